"""服务器迁移 end to end on a sandbox of its own with the target servers (db2/app2): real
PostgreSQL on both sides, real SSH (the dump streamed through the worker), the e-bill application
stopped, rewritten and started, evidence and approvals in the sandbox's S3.

The migration stops the application and rewrites its config: never on the shared sandbox. Set
EBOPS_TEST_MIGRATION_SANDBOX_DIR to reuse one started with
`EBOPS_SANDBOX_DIR=DIR ebops sandbox up --with-target --days 60 --bills-per-day 20`; otherwise the
module starts (and stops) its own. Between tests the target is reset (sandbox/target.reset).
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from config.settings import load_site
from flows.common import VerdictFailed
from flows.migration import MigrateParams, migration
from sandbox import manager, postgres, target
from sandbox.ports import wait_until
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from tasks.evidence.store import open_store
from tasks.migration.approval import ApprovalRefused, record_approval
from tasks.migration.canonical import key_label
from tasks.migration.plan_doc import load_plan

pytestmark = pytest.mark.sandbox
REPO = Path(__file__).resolve().parents[2]
PHASE_TITLES = ["1. 迁移前检查", "2. 迁移方案", "3. 停机冻结", "4. 最终备份", "5. 传输与恢复", "6. 数据校验", "7. 切换",
                "8. 冒烟测试"]


@pytest.fixture(scope="module")
def msbx(prefect_harness):
    old_env = dict(os.environ)   # export_credentials puts this sandbox's secrets in the environment
    reuse = os.environ.get("EBOPS_TEST_MIGRATION_SANDBOX_DIR")
    root = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="ebops-migration-"))
    os.environ["EBOPS_SANDBOX_DIR"] = str(root)
    try:
        state = manager.up(days=30, bills_per_day=20, with_target=True) if not reuse else manager.read_state()
        if not target.is_running(state.get("target") or {}):
            pytest.fail(f"the migration sandbox in {root} has no running target (ebops sandbox up --with-target)")
        manager.export_credentials()
        yield {"root": root, "state": state}
    finally:
        if not reuse:
            manager.down()
            postgres.discard(root)
            shutil.rmtree(root, ignore_errors=True)
        # the session's sandbox and its secrets back for the tests that follow
        os.environ.clear()
        os.environ.update(old_env)


@pytest.fixture()
def mig(msbx, tmp_path, monkeypatch, approve_standing):
    """The target reset, the demo site wired to this sandbox, a PASSED backup verification."""
    os.environ["EBOPS_SANDBOX_DIR"] = str(msbx["root"])
    creds = manager.credentials()
    target.reset(msbx["root"], creds, msbx["state"]["postgres"], msbx["state"]["target"])
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    demo["variables_from"] = str(msbx["root"] / "site-vars.yaml")
    demo["evidence"]["outbox"] = str(tmp_path / "outbox")
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))

    def write(edit=None) -> None:
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        if edit:
            edit(data["migration"])
        (tmp_path / "demo.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    write()
    site = load_site("demo")
    store = open_store(site.evidence)
    if not any(o.object_name.endswith("manifest.json") for o in store.list("demo/backup_verification/")):
        from flows.backup_verification import VerifyParams, backup_verification

        approve_standing("demo")   # a sandbox of its own: the verification's standing approval is not there yet
        backup_verification(VerifyParams(site="demo", take_backup=True, engineer="测试"))
    return {"write": write, "store": store, "creds": creds, "root": msbx["root"], "state": msbx["state"]}


def run(**params):
    state = migration(MigrateParams(site="demo", **params), return_state=True)
    if state.is_completed():
        return state.result()
    with pytest.raises(VerdictFailed) as failed:
        state.result()
    return failed.value.outcome


def plan_and_approve(points=("plan_review", "downtime", "cutover"), approver="王主任", engineer="张工"):
    outcome = run(mode="plan", engineer=engineer)
    assert outcome.verdict is Status.OK, [r.reason for r in outcome.results if r.status is not Status.OK]
    site = load_site("demo")
    plan = load_plan(open_store(site.evidence), site)
    for p in points:
        record_approval(site, plan, p, approver)
    return plan


def health(port_key: str, mig) -> dict:
    port = yaml.safe_load((Path(mig["root"]) / "site-vars.yaml").read_text())[port_key]
    return httpx.get(f"http://127.0.0.1:{port}/health/issue", timeout=10).json()


def db2_admin(mig, dbname="ebill") -> str:
    return target._admin(mig["state"]["target"]["pg_port_db2"], mig["creds"], dbname)


def titles(outcome, prefix: str) -> list:
    return [r for r in outcome.results if r.title.startswith(prefix)]


def test_whole_migration_passes_with_downtime_measured(mig):
    plan = plan_and_approve()
    out = run(mode="execute", engineer="张工")
    assert out.verdict is Status.OK, [(r.title, r.reason) for r in out.results if r.status is not Status.OK]
    for t in PHASE_TITLES:
        assert titles(out, t), t
    downtime = next(r for r in out.results if r.title.endswith("停机时间"))
    assert 0 < float(downtime.value) and "方案预计" in downtime.reason
    served = health("app_port_app2", mig)     # the application answers on the new servers, from db2
    with psycopg.connect(db2_admin(mig)) as conn:
        assert served["system_identifier"] == conn.execute(
            "SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    # the smoke test's test bill, issued on app2 and red-flushed, is in db2 (and only there)
    smoke = next(r for r in out.results if r.title.endswith("测试票据开具与冲红"))
    assert smoke.status is Status.OK and smoke.value == 2, smoke.reason
    code, no = smoke.target.split("-")
    pair = ("SELECT b.status, r.bill_code, r.bill_no, r.total_amt, b.total_amt, b.payer_name, r.payer_name "
            "FROM ebill_canon.ebill_invoice b JOIN ebill_canon.ebill_invoice r ON r.bill_kind = 'R' "
            "AND r.orig_bill_code = b.bill_code AND r.orig_bill_no = b.bill_no "
            "WHERE b.bill_kind = 'B' AND b.bill_code = %s AND b.bill_no = %s")
    with psycopg.connect(db2_admin(mig)) as conn:
        rows = conn.execute(pair, (code, no)).fetchall()
    assert len(rows) == 1, rows                                   # one red bill reverses it (DQ11, DQ12)
    status, red_code, red_no, red_amt, blue_amt, payer, red_payer = rows[0]
    assert status == "FLUSHED" and red_amt == -blue_amt and payer == red_payer == "迁移冒烟测试"
    with psycopg.connect(postgres.admin_conninfo(mig["state"]["postgres"], mig["creds"], "ebill")) as conn:
        assert not conn.execute(pair, (code, no)).fetchall()       # the source database is never written to
    key = out.bundle.prefix + "report.md"
    record = mig["store"].get(key).decode()
    assert "迁移记录" in record and plan.sha256() in record
    for t in PHASE_TITLES:
        assert t in record
    assert record.count("migration:") >= 3     # the three approvals are listed
    assert "冒烟测试票据" in record and f"{code}-{no}" in record and f"{red_code}-{red_no}" in record
    assert "迁移冒烟测试" not in record        # the payer is masked in the record


def test_killed_during_transfer_and_resumed(mig, tmp_path):
    plan_and_approve()
    mig["write"](lambda m: m.update(transfer_max_mib_s=0.02))   # a slow copy (not part of the plan): the kill lands in it
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value() or "", PYTHONPATH=str(REPO))
    earlier = {o.object_name.split("/")[3] for o in mig["store"].list("demo/migration/_runs/")}
    proc = subprocess.Popen([sys.executable, str(REPO / "ebops_cli.py"), "migrate", "demo", "--mode", "execute",
                             "--engineer", "张工"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    store = mig["store"]

    def started_now() -> list[str]:   # runs of earlier tests are in the same store: only new ones count
        return [o.object_name.split("/")[3] for o in store.list("demo/migration/_runs/")
                if o.object_name.endswith("05-transfer.start-1") and o.object_name.split("/")[3] not in earlier]
    try:
        wait_until(lambda: bool(started_now()), 600, "the transfer phase to start", interval=0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    run_id = started_now()[0]
    assert not any(o.object_name.endswith("05-transfer.json") for o in store.list(f"demo/migration/_runs/{run_id}/"))
    mig["write"]()                                   # the same plan: the rate cap is not part of it
    out = run(mode="execute", resume=run_id, engineer="张工")
    assert out.verdict is Status.OK, [(r.title, r.reason) for r in out.results if r.status is not Status.OK]
    restore = next(r for r in out.results if r.title.endswith("恢复到目标库"))
    assert "覆盖上次中断" in restore.reason       # the second attempt, with --clean --if-exists
    assert any(o.object_name.endswith("05-transfer.start-2") for o in store.list(f"demo/migration/_runs/{run_id}/"))
    assert len([r for r in out.results if r.title.endswith("停止应用")]) == 1   # freeze ran once


def test_missing_row_caught_at_verify_then_rollback_restores_the_source(mig):
    plan = plan_and_approve()
    record_approval(load_site("demo"), plan, "rollback", "赵工")
    earlier = {o.object_name.split("/")[3] for o in mig["store"].list("demo/migration/_runs/")}
    paused = run(mode="execute", engineer="张工", pause_after="transfer")
    assert paused.verdict is Status.SKIPPED and any(r.code == Code.SKIPPED_BY_REQUEST for r in paused.results)
    run_id = next(o.object_name.split("/")[3] for o in mig["store"].list("demo/migration/_runs/")
                  if "/05-transfer.paused-" in o.object_name and o.object_name.split("/")[3] not in earlier)
    with psycopg.connect(db2_admin(mig), autocommit=True) as conn:
        # one row, by its primary key (MIN(ctid) of the partitioned table took one row of every partition)
        gone = conn.execute("DELETE FROM ebill.t_ebill_detail WHERE (main_id, sort_no, ivc_datetime) = "
                            "(SELECT main_id, sort_no, ivc_datetime FROM ebill.t_ebill_detail ORDER BY 1, 2, 3 LIMIT 1) "
                            "RETURNING main_id, sort_no, ivc_datetime").fetchall()
    assert len(gone) == 1
    out = run(mode="execute", resume=run_id, engineer="张工")
    assert out.verdict is Status.FAIL
    counts = [r for r in out.results if r.code == Code.ROW_COUNT_MISMATCH]
    assert counts and counts[0].target == "t_ebill_detail"
    rows = [r for r in out.results if r.code == Code.ROWS_DIFFER and r.target == "t_ebill_detail"]
    key = key_label(gone[0], [False] * 3)                  # the row check names the missing row by its primary key
    assert rows and rows[0].value == 1 and f"目标库缺失 1 行（主键 {key}）" in rows[0].reason, [r.reason for r in rows]
    assert not titles(out, "7. 切换")                     # never cut over onto a wrong copy
    back = titles(out, "9. 回退")
    assert back and all(r.status is Status.OK for r in back), [(r.title, r.reason) for r in back]
    with psycopg.connect(postgres.admin_conninfo(mig["state"]["postgres"], mig["creds"])) as conn:
        db1 = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    assert health("app_port_app1", mig)["system_identifier"] == db1   # service is back on the source


def test_refused_when_the_target_is_not_empty(mig):
    with psycopg.connect(db2_admin(mig), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.leftover (id int)")
    out = run(mode="plan", engineer="张工")
    refused = [r for r in out.results if r.code == Code.MIGRATION_TARGET_NOT_EMPTY]
    assert out.verdict is Status.FAIL and refused and refused[0].value == 1
    assert not titles(out, "2. 迁移方案")                 # no plan for a target that is not empty


def test_refused_when_the_plan_changed_after_approval(mig):
    plan_and_approve()
    mig["write"](lambda m: m["cutover_steps"].append(
        {"host": "app2", "argv": ["sh", "opt/ebill/bin/ebill-app.sh", "status"], "expect": "多加的一步"}))
    out = run(mode="execute", engineer="张工")
    assert out.verdict is Status.FAIL
    assert [r for r in out.results if r.code == Code.PLAN_CHANGED]   # the gate's refusal, through the seam
    assert not titles(out, "3. 停机冻结")
    assert health("app_port_app1", mig)["status"] == "UP"       # nothing was stopped


def test_refused_when_the_approver_is_the_requester(mig):
    plan = plan_and_approve(points=("plan_review",), approver="王主任")
    with pytest.raises(ApprovalRefused, match="cannot approve it") as exc:
        record_approval(load_site("demo"), plan, "downtime", "张工")
    assert exc.value.code is Code.APPROVER_IS_REQUESTER
    record_approval(load_site("demo"), plan, "downtime", "王主任")
    out = run(mode="execute", engineer="王主任")      # through the seam: the approver runs it himself
    refused = [r for r in out.results if r.code == Code.APPROVER_IS_REQUESTER]
    assert out.verdict is Status.FAIL and refused and "cannot approve it" in refused[0].reason
    assert not titles(out, "3. 停机冻结")
    assert health("app_port_app1", mig)["status"] == "UP"


def test_refused_before_the_freeze_when_the_target_has_too_little_space(mig):
    """Everything approved, then the hospital's headroom rule grows past what db2's disk has free:
    the preflight measures db2 with df over SSH and refuses; nothing is stopped."""
    plan_and_approve()
    db2_data = Path(mig["root"]) / "hosts" / "db2" / "u01"
    free_gib = shutil.disk_usage(db2_data).free / 1024 ** 3
    reserve = math.ceil(free_gib) + 50           # more headroom than the disk has: a real shortfall of db2's disk
    mig["write"](lambda m: m.update(free_space_reserve_gib=reserve))
    app1_pid = (Path(mig["root"]) / "hosts" / "app1" / "opt" / "ebill" / "run" / "ebill-app.pid").read_text()
    out = run(mode="execute", engineer="张工")
    assert out.verdict is Status.FAIL
    low = [r for r in out.results if r.code == Code.MIGRATION_SPACE_LOW]
    assert len(low) == 1 and low[0].host == "db2" and low[0].status is Status.FAIL
    reason = low[0].reason
    mount = low[0].target
    assert mount and mount in reason and str(db2_data.resolve()).startswith(mount)   # the mount df named
    measured_gib = float(reason.split("可用 ")[1].split(" GiB")[0])
    assert abs(measured_gib - free_gib) < 5                                # df over SSH saw this disk
    assert "1.5 倍" in reason and f"预留 {reserve} GiB" in reason and "扩容" in reason and "应用未停止" in reason
    assert not titles(out, "2. 迁移方案") and not titles(out, "3. 停机冻结")   # refused before the freeze
    assert health("app_port_app1", mig)["status"] == "UP"
    assert (Path(mig["root"]) / "hosts" / "app1" / "opt" / "ebill" / "run" / "ebill-app.pid").read_text() == app1_pid
    record = mig["store"].get(out.bundle.prefix + "report.md").decode()
    assert "迁移前检查" in record and "扩容" in record                     # the refusal is in the stored evidence
    runs = [o.object_name for o in mig["store"].list("demo/migration/_runs/") if "/01-preflight.failed-" in o.object_name]
    assert runs                                                               # and in the run's journal
