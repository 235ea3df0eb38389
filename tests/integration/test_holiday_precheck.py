"""The pre-holiday check (节前巡检) end to end under the Prefect harness, against the sandbox."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from config.settings import load_site
from flows.common import VerdictFailed
from flows.holiday_precheck import PrecheckParams, holiday_precheck
from tasks.core import calendar
from tasks.evidence.store import open_store
from tasks.core.reason_codes import Code
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox

# Every item of duties.md's inspection catalogue, by check name.
CATALOGUE = {"disk_usage", "tablespace_usage", "last_backup", "backup_space", "log_errors", "ebill_function",
             "interface_calls", "finance_backlog", "bill_stock", "certificate_expiry", "calendar_coverage"}


def _outcome(state):
    result = state.result(raise_on_failure=False)
    return result.outcome if isinstance(result, VerdictFailed) else result


def _roster(data, h: calendar.Holiday, skip_day: date | None = None):
    days = [h.first_day + timedelta(days=i) for i in range(h.days_off)]
    data["duty_roster"] = [{"date_from": d.isoformat(), "date_to": d.isoformat(), "engineer": f"值班{i}",
                            "phone": "0971-6000000"} for i, d in enumerate(days) if d != skip_day]


def test_precheck_takes_a_fresh_backup_runs_the_catalogue_and_lists_the_roster(prefect_harness, sites_dir, sandbox,
                                                                              approve_standing):
    from flows.holiday_precheck import pick_holiday
    h = pick_holiday(date.today(), None)
    name = sites_dir("demo-pre", lambda d: _roster(d, h))
    [approval, _] = approve_standing(name)   # the standing approval of the backup's plan, recorded in the store
    backups_before = set((sandbox["root"] / "hosts/db1/backup").glob("ebill_*.dump"))

    state = holiday_precheck(params=PrecheckParams(site=name, engineer="测试工程师"), return_state=True)
    outcome = _outcome(state)
    assert outcome is not None, state.message
    by_check = {}
    for r in outcome.results:
        by_check.setdefault(r.check, []).append(r)
    assert CATALOGUE <= set(by_check), CATALOGUE - set(by_check)

    [fresh] = by_check["fresh_backup"]
    assert (fresh.status, fresh.code) == (Status.OK, Code.OK), fresh.reason
    new_files = set((sandbox["root"] / "hosts/db1/backup").glob("ebill_*.dump")) - backups_before
    assert len(new_files) == 1 and next(iter(new_files)).name in fresh.reason
    # the catalogue's "last backup" judged the backup just taken
    [last] = by_check["last_backup"]
    assert last.target == next(iter(new_files)).name and last.status == Status.OK
    [roster] = by_check["duty_roster"]
    assert roster.status == Status.OK

    store = open_store(load_site(name).evidence)
    prefix = outcome.bundle.prefix
    assert prefix.startswith(f"{name}/holiday_precheck/")
    report = store.get(prefix + "report.md").decode("utf-8")
    assert "节前巡检报告" in report and h.name in report and "节假日值班安排" in report and "值班0" in report
    detail = report.split("## 二、巡检明细")[1].split("## 三")[0]
    rows = [line for line in detail.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(outcome.results)   # every item with value, threshold and status
    manifest = json.loads(store.get(prefix + "manifest.json"))
    assert manifest["approvals"] and manifest["approvals"][0]["action"] == "fresh_backup"
    assert manifest["approvals"][0]["approved_by"] == approval.approver == "王主任"
    assert manifest["approvals"][0]["plan_sha256"] == approval.plan_sha256 and manifest["approvals"][0]["record"]


def test_precheck_without_approval_only_plans_the_backup_and_warns_on_roster_gaps(prefect_harness, sites_dir, sandbox):
    from flows.holiday_precheck import pick_holiday
    h = pick_holiday(date.today(), None)

    def edit(d):
        _roster(d, h, skip_day=h.first_day)   # and no approval is recorded for this site's plan

    name = sites_dir("demo-pre-plan", edit)
    backups_before = set((sandbox["root"] / "hosts/db1/backup").glob("ebill_*.dump"))
    outcome = _outcome(holiday_precheck(params=PrecheckParams(site=name), return_state=True))
    [fresh] = [r for r in outcome.results if r.check == "fresh_backup"]
    assert (fresh.status, fresh.code) == (Status.SKIPPED, Code.APPROVAL_MISSING) and "ebill_backup.sh" in fresh.raw
    assert f"ebops approve {name} {name}/plans/" in fresh.reason   # where the plan waits for its approval
    assert set((sandbox["root"] / "hosts/db1/backup").glob("ebill_*.dump")) == backups_before
    [roster] = [r for r in outcome.results if r.check == "duty_roster"]
    assert (roster.status, roster.code) == (Status.WARN, Code.ROSTER_GAP) and h.first_day.isoformat() in roster.reason
    assert outcome.verdict.rank >= Status.SKIPPED.rank   # a planned-only backup is never "passed"
    manifest = json.loads(open_store(load_site(name).evidence).get(outcome.bundle.prefix + "manifest.json"))
    assert manifest["approvals"] == []


def test_failed_backup_command_fails_the_run_after_storing_evidence(prefect_harness, sites_dir, approve_standing):
    def edit(d):
        d["hosts"][0]["backup"]["command"] = ["sh", "-c", "echo disk full >&2; exit 3"]

    name = sites_dir("demo-pre-fail", edit)
    approve_standing(name)   # the failing command is what was approved: it runs, and fails
    state = holiday_precheck(params=PrecheckParams(site=name), return_state=True)
    assert state.is_failed()
    outcome = _outcome(state)
    [fresh] = [r for r in outcome.results if r.check == "fresh_backup"]
    assert (fresh.status, fresh.code) == (Status.FAIL, Code.COMMAND_FAILED), fresh.reason
    assert "(exit 3)" in fresh.raw and "disk full" in fresh.raw
    assert open_store(load_site(name).evidence).get(outcome.bundle.prefix + "report.html")
