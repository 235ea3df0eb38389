"""The inspection flow end to end, under the Prefect test harness, against the sandbox hospital."""
from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.settings import load_site
from flows.common import VerdictFailed
from flows.inspection import inspection, positions_file
from sandbox import manager, postgres
from sandbox.traffic import Traffic
from tasks.core import calendar
from tasks.connect.database import connect
from tasks.inspection.ebill import site_now
from tasks.evidence.store import open_store
from tasks.evidence.verify import list_bundles, verify
from tasks.connect.ssh import HostPool
from tasks.inspection.logs import log_errors, save_positions
from tasks.core.reason_codes import Code
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox

# Every item of duties.md's inspection catalogue, by check name.
CATALOGUE = {"disk_usage", "tablespace_usage", "last_backup", "backup_space", "log_errors", "ebill_function",
             "interface_calls", "finance_backlog", "bill_stock", "certificate_expiry", "calendar_coverage"}


def _bundle_file(site_name: str, prefix: str, name: str) -> bytes:
    return open_store(load_site(site_name).evidence).get(prefix + name)


def _previous_run_read_every_log() -> None:
    """Log positions as a previous inspection leaves them: at the end of every log. The log item
    judges what was added since the last run; what earlier tests provoked in the shared sandbox's
    PostgreSQL log (failed logins, cancelled statements) is not new to this run."""
    site = load_site("demo")
    positions: dict = {}
    with HostPool() as pool:
        for host in site.hosts:
            recs, pos = log_errors.fn(site.site, host, pool, {})
            assert all(r.status != Status.ERROR for r in recs), [r.reason for r in recs]
            positions.update(pos)
    save_positions(positions_file(site), positions)


def _hospital_at_work(traffic: Traffic, deadline_s: float = 120) -> None:
    """Wait until the running hospital has issued, uploaded and notified at least once AND every
    interface's call is in the window as the interface check reads it, as at a hospital at work.
    (The check's window ends at the site's "now" to the second: a call logged later in that same
    second is not in it yet, so the counters alone let the check run a moment too early.)"""
    site = load_site("demo")
    end = time.monotonic() + deadline_s
    seen: set[str] = set()
    while min(traffic.issued, traffic.uploaded, traffic.updated) < 1 or not set(site.interface_targets) <= seen:
        assert traffic.error is None and time.monotonic() < end, \
            (traffic.error, traffic.issued, traffic.uploaded, traffic.updated, sorted(seen))
        until = site_now(site)
        with connect(site.database) as db:
            seen = {s.target for s in db.interface_stats(until - timedelta(minutes=1), until) if s.calls}
        time.sleep(0.2)


def test_inspection_of_healthy_sandbox_passes_and_stores_evidence(prefect_harness, sites_dir, sandbox):
    # The only item a healthy sandbox may WARN on: the holiday calendar, while a year of the next
    # 12 months is only a template (config/holidays/2027.yaml until the State Council's notice is
    # entered). Then it must say exactly that, by code; once the notice is in, it must be OK too.
    # (A year without even a template file, e.g. 2028 seen from late 2027, is calendar_year_missing.)
    site = load_site("demo")
    today = datetime.now(ZoneInfo(site.timezone)).date()
    covered, years, _ = calendar.coverage(today, site.thresholds.calendar_months_ahead)
    templates = all((calendar.holidays_dir() / f"{y}.yaml").exists() for y in years)
    may_warn = {} if covered else {
        "calendar_coverage": Code.CALENDAR_TEMPLATE_ONLY if templates else Code.CALENDAR_YEAR_MISSING}

    _previous_run_read_every_log()
    admin = postgres.admin_conninfo(sandbox["state"]["postgres"], manager.credentials())
    with Traffic(admin, interval_s=1.0, log_calls=True) as traffic:
        _hospital_at_work(traffic)
        state = inspection(site="demo", kind="monthly", return_state=True)
    assert state.is_completed(), state.message
    outcome = state.result()
    assert outcome.verdict == (Status.OK if covered else Status.WARN)
    checks = {(r.check, r.host, r.target) for r in outcome.results}
    assert CATALOGUE <= {c for c, _, _ in checks}, CATALOGUE - {c for c, _, _ in checks}
    not_ok = [(r.check, r.target, r.status.value, r.code, r.reason) for r in outcome.results
              if r.status != Status.OK and may_warn.get(r.check) != r.code]
    assert not not_ok, not_ok
    for check, code in may_warn.items():
        assert [(r.status, r.code) for r in outcome.results if r.check == check] == [(Status.WARN, code)]
    assert all(r.code == Code.OK for r in outcome.results if r.status == Status.OK)
    assert len([r for r in outcome.results if r.check == "interface_calls"]) == 4
    assert len([r for r in outcome.results if r.check == "ebill_function"]) == 7
    for host in site.hosts:
        for mount in host.mounts:
            assert ("disk_usage", host.name, mount) in checks
    tablespaces = {r.target for r in outcome.results if r.check == "tablespace_usage"}
    # Every year's tablespace up to this one; next year's is the December year-end duty's to add
    # (QH row 14, flows/year_end.py), so the sandbox does not have it.
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    assert {f"ts_ebill_{year}", f"ts_ebill_{year - 1}", "pg_default"} <= tablespaces
    assert all(r.status == Status.OK for r in outcome.results if r.check == "tablespace_usage")
    [backup] = [r for r in outcome.results if r.check == "last_backup"]
    assert backup.status == Status.OK and backup.value < 1, backup.reason

    assert outcome.bundle.location == "store"
    prefix = outcome.bundle.prefix
    assert prefix.startswith("demo/inspection/")
    report = _bundle_file("demo", prefix, "report.html").decode("utf-8")
    assert "沙箱演示医院" in report and "巡检报告" in report and "月度巡检" in report
    for title in ("服务器磁盘使用率", "表空间使用率", "最近一次备份", "备份空间使用率", "电子票据功能可用性",
                  "证书有效期", "节假日日历覆盖"):
        assert title in report
    result = json.loads(_bundle_file("demo", prefix, "result.json"))
    assert result["verdict"] == outcome.verdict.value and len(result["results"]) == len(outcome.results)
    assert [r["code"] for r in result["results"]] == [r.code for r in outcome.results]
    manifest = json.loads(_bundle_file("demo", prefix, "manifest.json"))
    assert {f["name"] for f in manifest["files"]} >= {"report.html", "report.md", "result.json"}
    assert manifest["flow_run_id"] == str(state.state_details.flow_run_id)
    # The run's artifacts in Prefect: the verdict with the report link, the items not OK as a table.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))}
    assert arts["inspection-demo"].type == "markdown" and outcome.bundle.prefix in arts["inspection-demo"].data
    table = arts["inspection-demo-findings"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert table.type == "table" and [r["结果"] for r in rows] == (["OK"] if covered else ["WARN"])
    assert verify(load_site("demo").evidence, site="demo", duty="inspection").ok


def test_unreachable_host_gives_error_run_fails_and_evidence_is_kept(prefect_harness, sites_dir, unused_port):
    def add_dead_host(data):
        dead = dict(data["hosts"][1], name="app2", port=unused_port)
        data["hosts"].append(dead)

    name = sites_dir("demo-deadhost", add_dead_host)
    state = inspection(site=name, return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, VerdictFailed)
    outcome = exc.outcome
    dead = [r for r in outcome.results if r.host == "app2"]
    assert dead and all((r.status, r.code) == (Status.ERROR, Code.HOST_UNREACHABLE) for r in dead), dead
    assert "app2" in dead[0].reason and str(unused_port) in dead[0].reason
    # Every other host was still inspected.
    assert any(r.host == "db1" and r.status == Status.OK for r in outcome.results)
    assert outcome.verdict == Status.ERROR
    assert all(r.code for r in outcome.results), [(r.check, r.status) for r in outcome.results if not r.code]
    stored = [b.prefix for b in list_bundles(load_site(name).evidence, site=name, duty="inspection")]
    assert outcome.bundle.prefix in stored


def test_disk_over_threshold_fails_the_run_after_storing_evidence(prefect_harness, sites_dir):
    def strict(data):
        data["thresholds"] = {"disk_warn_pct": 0.5, "disk_fail_pct": 1}

    name = sites_dir("demo-strict", strict)
    state = inspection(site=name, return_state=True)
    assert state.is_failed()
    outcome = state.result(raise_on_failure=False).outcome
    disk = [r for r in outcome.results if r.check == "disk_usage"]
    assert disk and all((r.status, r.code) == (Status.FAIL, Code.DISK_USAGE_HIGH) for r in disk)
    report = _bundle_file(name, outcome.bundle.prefix, "report.md").decode("utf-8")
    assert "【异常】服务器磁盘使用率" in report


def test_a_log_read_that_hangs_is_an_error_within_its_timeout_and_the_run_goes_on(prefect_harness, sites_dir, sandbox):
    # A FIFO given as app1's log path: reading it blocks for ever (no writer ever comes).
    fifo = Path(sandbox["root"]) / "hosts" / "app1" / "logs" / f"hang-{uuid.uuid4().hex[:8]}.log"
    os.mkfifo(fifo)
    timeout = 5

    def hanging_log(data):
        app1 = next(h for h in data["hosts"] if h["name"] == "app1")
        app1["logs"].insert(0, dict(app1["logs"][0], path=str(fifo)))
        app1["command_timeout_s"] = timeout

    try:
        name = sites_dir("demo-fifo", hanging_log)
        began = time.monotonic()
        state = inspection(site=name, return_state=True)
        elapsed = time.monotonic() - began
    finally:
        fifo.unlink()
    assert state.is_failed()
    outcome = state.result(raise_on_failure=False).outcome
    [hung] = [r for r in outcome.results if r.target == str(fifo)]
    assert (hung.check, hung.status, hung.code) == ("log_errors", Status.ERROR, Code.COMMAND_TIMEOUT), hung.reason
    # the only ERROR: app1's other log, its disk and certificate, and every other item were inspected
    assert [r for r in outcome.results if r.status == Status.ERROR] == [hung]
    assert CATALOGUE <= {r.check for r in outcome.results}
    app1_log = [r for r in outcome.results if r.check == "log_errors" and r.host == "app1" and r is not hung]
    assert app1_log and all(r.status != Status.ERROR for r in app1_log)
    assert all(r.code for r in outcome.results), [(r.check, r.status) for r in outcome.results if not r.code]
    assert elapsed < 300, elapsed  # one command timeout, not a hang (the rest is the run on a loaded machine)
    assert outcome.bundle.location == "store"
