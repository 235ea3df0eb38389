"""Approvals without a store: the site settings and their messages, the plans of the standing
duties (stable SHA-256, SQL that parses), what a changed plan's refusal names, the form's schema."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlglot
import yaml

from config.problems import SiteConfigError
from config.settings import load_site
from tasks.approvals.gate import _approver_problem, _changed, default_expiry
from tasks.approvals.plan import Plan, PlanStep
from tasks.approvals.records import ApprovalRecord
from tasks.approvals.standing import standing_plans
from tasks.core.reason_codes import Code
from tasks.evidence.store import split_key

REPO = Path(__file__).resolve().parents[2]


def demo_data(tmp_path: Path) -> dict:
    data = yaml.safe_load((REPO / "config/sites/demo.yaml").read_text(encoding="utf-8"))
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(yaml.safe_dump({"pg_port": 5432, "ssh_port_db1": 22, "ssh_port_app1": 22, "ssh_port_files1": 22,
                                         "sandbox_root": "/srv/sbx", "s3_port": 9000, "health_port": 80, "tls_port": 443,
                                         "bin_dir": "/usr/lib/postgresql/16/bin",
                                         "evidence_public_key": "A" * 43 + "="}))
    data["variables_from"] = str(vars_file)
    return data


def load(tmp_path: Path, data: dict):
    p = tmp_path / f"{data['site']}.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_site(p)


def problems(tmp_path, data):
    with pytest.raises(SiteConfigError) as exc:
        load(tmp_path, data)
    return exc.value.problems


def test_the_old_free_text_approvals_are_refused_with_the_way_to_approve_now(tmp_path):
    data = demo_data(tmp_path)
    data["hosts"][0]["backup"]["command_approved_by"] = "信息科 张工"
    data["backup_verification"]["approved_by"] = "信息科 张工"
    found = {p.field: p for p in problems(tmp_path, data)}
    assert set(found) == {"hosts[0:db1].backup.command_approved_by", "backup_verification.approved_by"}
    for p in found.values():
        assert "no longer read" in p.message and "ebops approve" in p.hint


def test_approvers_and_approval_settings_are_validated(tmp_path):
    data = demo_data(tmp_path)
    site = load(tmp_path, data)
    assert [a.name for a in site.approvers] == ["王主任", "赵工"] and site.approval.standing_expiry_days == 365
    dup = copy.deepcopy(data)
    dup["approvers"].append({"name": "王主任"})
    assert "repeated: 王主任" in problems(tmp_path, dup)[0].message
    code = copy.deepcopy(data)
    code["approval"]["confirm_code"] = True   # the demo has no notify targets to send it to
    assert "no notify targets" in problems(tmp_path, code)[0].message
    short = copy.deepcopy(data)
    short["approval"]["pause_timeout_s"] = 1
    assert problems(tmp_path, short)[0].field == "approval.pause_timeout_s"


def test_standing_plans_are_stable_and_their_sql_parses(tmp_path):
    site = load(tmp_path, demo_data(tmp_path))
    plans = standing_plans(site)
    assert [p.duty for p in plans] == ["fresh_backup", "backup_verification"]
    assert [p.sha256() for p in plans] == [p.sha256() for p in standing_plans(site)]   # no time, no run id in it
    assert plans[0].steps[0].text == "sh /srv/sbx/hosts/db1/bin/ebill_backup.sh"
    sql = [s.text for p in plans for s in p.steps if s.kind == "sql"]
    assert len(sql) == 2
    for text in sql:
        sqlglot.parse_one(text, read="postgres")
    # a different backup command is another plan: approve again
    data = demo_data(tmp_path)
    data["hosts"][0]["backup"]["command"] = ["sh", "/srv/other.sh"]
    assert standing_plans(load(tmp_path, data))[0].sha256() != plans[0].sha256()


def test_the_refusal_of_a_changed_plan_names_what_changed():
    step = PlanStep(id="tablespace:ts_2027", kind="sql", target="db", text="CREATE TABLESPACE ts_2027", expect="新建")
    a = Plan(site="s", duty="year_end", title="年结", requested_by="张工", steps=[step], facts={"size_mb": 1})
    b = a.model_copy(update={"facts": {"size_mb": 2},
                             "steps": [step.model_copy(update={"text": "CREATE TABLESPACE ts_2027 SIZE 2G"})]})
    msg = _changed(a, b, "s/plans/2026/x/")
    assert "fact size_mb" in msg and "step tablespace:ts_2027" in msg and "new plan" in msg


def test_approver_rules_and_expiry(tmp_path):
    site = load(tmp_path, demo_data(tmp_path))
    plan = standing_plans(site)[0]
    assert _approver_problem(site, plan, "王主任", "演示工程师") is None
    assert _approver_problem(site, plan, " 王主任 ", "王主任").code is Code.APPROVER_IS_REQUESTER
    assert _approver_problem(site, plan, "路人", "").code is Code.APPROVER_NOT_LISTED
    assert default_expiry(site, "fresh_backup") == timedelta(days=365)
    assert default_expiry(site, "year_end") == timedelta(hours=72)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    rec = ApprovalRecord(site="s", duty="d", plan_sha256="x", plan_key="k/", plan_title="t", requested_by="a",
                         approver="b", approved_at=now, expires_at=now + timedelta(hours=1))
    assert not rec.expired(now) and rec.expired(now + timedelta(hours=1))


def test_records_outside_bundles_are_never_taken_for_bundles():
    assert split_key("_approvals/demo/year_end/abc/0001.json") is None
    assert split_key("_runbooks/demo/year_end/abc/step/0001.json") is None
    assert split_key("demo/plans/2026/20261202T000000Z_x/plan.json") == ("demo/plans/2026/20261202T000000Z_x/", "plan.json")


def test_the_approval_form_has_the_fields_the_ui_shows():
    from tasks.approvals.ui import ApprovalForm

    form = ApprovalForm.with_initial_data(description="## 审批", approver="")
    fields = form.model_json_schema()["properties"]
    assert {"approver", "decision", "ticket", "confirm_code", "comment"} <= set(fields)
    assert fields["decision"]["enum"] == ["approve", "deny"]
