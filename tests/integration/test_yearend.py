"""技术年结 end to end: a private PostgreSQL (the sandbox's build, with its older years) takes the DDL,
the session sandbox's SSH host db1 makes the tablespace folders and the fresh backup, its S3 holds
the evidence. The session sandbox's own database is never changed: the year-end's tablespaces are
cluster-wide and its compaction moves partitions other tests read.

In order (one cluster, one site): the gate refuses without a PASSED backup verification; plan;
an execute killed (SIGKILL, a real subprocess) while blocked halfway, inside the first compaction of
t_ebill_main; the next execute resumes and its record shows both runs; every compacted partition's
rows and fingerprint equal before and after; a third execute changes nothing.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from config.settings import load_site
from flows.common import VerdictFailed, outbox_dir
from flows.year_end import YearEndParams, year_end
from tasks.core.results import Status
from tasks.evidence.bundle import BundleWriter

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
ADMIN_PW, DBA_ENV = uuid.uuid4().hex, "EBOPS_YE_TEST_DBA_PASSWORD"
DEADLINE_S = 600


@pytest.fixture(scope="module")
def ye_pg(sandbox):
    """A PostgreSQL of its own, built as the sandbox builds the demo's (older years included)."""
    from sandbox import postgres

    root = Path(tempfile.mkdtemp(prefix="ebops-ye-"))
    root.chmod(0o755)
    creds = {"EBOPS_DEMO_DB_ADMIN_PASSWORD": ADMIN_PW, "EBOPS_DEMO_DB_PASSWORD": uuid.uuid4().hex}
    state = None
    try:
        state = postgres.start(root, creds, days=20, bills_per_day=5)
        os.environ[DBA_ENV] = ADMIN_PW
        yield state
    finally:
        if state:
            postgres.stop(state)
        postgres.discard(root)
        shutil.rmtree(root, ignore_errors=True)
        os.environ.pop(DBA_ENV, None)


def _admin(state) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=state["pg_port"], dbname="ebill", user="postgres",
                           password=ADMIN_PW, autocommit=True)


@pytest.fixture(scope="module")
def ye_site(ye_pg, sandbox, tmp_path_factory):
    import yaml

    folder = tmp_path_factory.mktemp("ye-sites")
    demo = yaml.safe_load((REPO / "config/sites/demo.yaml").read_text(encoding="utf-8"))
    demo["variables_from"] = str(sandbox["root"] / "site-vars.yaml")
    name = f"ye{uuid.uuid4().hex[:8]}"  # its own evidence chains
    demo["site"] = name
    demo["evidence"]["outbox"] = str(folder / "outbox")
    demo["year_end"].pop("files", None)  # the file server's part has its own tests (test_yearend_files.py)
    demo["year_end"]["database"]["dba"].update(dsn=f"host=127.0.0.1 port={ye_pg['pg_port']} dbname=ebill",
                                   password={"env": DBA_ENV}, lock_timeout_s=DEADLINE_S)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    old = os.environ.get("EBOPS_SITES_DIR")
    os.environ["EBOPS_SITES_DIR"] = str(folder)
    yield name
    if old is None:
        os.environ.pop("EBOPS_SITES_DIR", None)
    else:
        os.environ["EBOPS_SITES_DIR"] = old


def _outcome(state):
    result = state.result(raise_on_failure=False)
    return result.outcome if isinstance(result, VerdictFailed) else result


def _snapshot(state) -> dict:
    """What the year-end may change: tablespaces, and each bill partition's file, place, comment, ACL."""
    with _admin(state) as conn:
        spaces = sorted(r[0] for r in conn.execute("SELECT spcname FROM pg_tablespace"))
        parts = conn.execute("""
            SELECT c.relname, c.relfilenode, COALESCE(t.spcname, ''), obj_description(c.oid, 'pg_class'), c.relacl::text
            FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
            WHERE c.relname ~ '^t_ebill_(main|detail)_\\d{4}$' ORDER BY 1""").fetchall()
    return {"tablespaces": spaces, "partitions": parts}


def _run(name, **kw):
    return _outcome(year_end(params=YearEndParams(site=name, engineer="张工", **kw), return_state=True))


def _approve(name: str, plan_key: str, who: str = "王主任"):
    from tasks.approvals.gate import approve

    return approve(load_site(name), plan_key, who)


def test_approval_and_gate_refuse_before_anything_changes(prefect_harness, ye_pg, ye_site):
    plan = _run(ye_site, mode="plan")
    assert plan.verdict is Status.OK
    key = plan.bundle.prefix
    before = _snapshot(ye_pg)
    # no approval recorded: refused before any step, with the command that approves it
    state = year_end(params=YearEndParams(site=ye_site, mode="execute", engineer="张工"), return_state=True)
    refused = str(state.result(raise_on_failure=False))
    assert "approval_missing" in refused and f"ebops approve {ye_site} {key}" in refused
    _approve(ye_site, key)
    # the approver cannot execute the plan himself (多人负责制度)
    state = year_end(params=YearEndParams(site=ye_site, mode="execute", engineer="王主任"), return_state=True)
    assert "approver_is_requester" in str(state.result(raise_on_failure=False))
    # approved, but no PASSED backup verification in the store: the gate refuses
    out = _run(ye_site, mode="execute")
    [gate] = [r for r in out.results if r.check == "backup_verification_gate"]
    assert (gate.status, gate.code) == (Status.FAIL, "verification_missing"), gate.reason
    steps = [r for r in out.results if r.check == "year_end_step"]
    assert steps and all(r.status is Status.SKIPPED for r in steps)
    assert _snapshot(ye_pg) == before  # no approval or no gate: no execution


def _passed_verification(site_name: str) -> None:
    """A PASSED 备份恢复验证记录 of this site in the store, signed and chained like any (the
    verification itself is tests/integration/test_backup_verification.py's; minutes to run)."""
    site = load_site(site_name)
    now = datetime.now(timezone.utc)
    w = BundleWriter(site.site, "backup_verification", "2026-Q4", str(uuid.uuid4()), now, site.evidence, outbox_dir(site))
    w.add_json("result.json", {"verdict": "OK", "results": []})
    w.finish(verdict="OK", finished_at=now, approvals=[])


def _wait_for(cond, what: str, proc: subprocess.Popen | None = None, timeout: float = 300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def test_execute_killed_halfway_is_resumed_proven_and_idempotent(prefect_harness, ye_pg, ye_site, tmp_path):
    from prefect.settings import PREFECT_API_URL

    _passed_verification(ye_site)
    from tasks.approvals.records import store_plan
    from tasks.backup.fresh import standing_plan

    site = load_site(ye_site)
    _approve(ye_site, store_plan(site, standing_plan(site)).prefix)  # the fresh backup's standing approval
    old_year = datetime.now().year - 4
    blocked = f"t_ebill_main_{old_year}"
    with _admin(ye_pg) as conn:
        rows_before = {r[0]: r[1] for r in conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM ebill.t_ebill_main GROUP BY 1")}
    locker = _admin(ye_pg)
    locker.execute("BEGIN")
    locker.execute(f"LOCK TABLE ebill.{blocked} IN ACCESS SHARE MODE")  # holds back its ALTER TABLE
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), COLUMNS="200")
    cmd = [sys.executable, "-m", "flows.cli", "yearend", ye_site, "--mode", "execute", "--engineer", "张工"]
    with open(tmp_path / "out", "w") as o:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=o, stderr=subprocess.STDOUT, start_new_session=True)
    watcher = _admin(ye_pg)  # not the locker: pg_stat_activity is read once per transaction
    try:
        _wait_for(lambda: watcher.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'ebill-ops year-end' AND wait_event_type = 'Lock' "
            f"AND query LIKE 'ALTER TABLE ebill.{blocked} %'").fetchone(), "the run to block on the held lock", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        watcher.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # the DBA ends the killed run's lost session, then lets go of the table
    locker.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ebill-ops year-end'")
    locker.execute("ROLLBACK")
    locker.close()
    halfway = _snapshot(ye_pg)
    assert f"ts_ebill_{datetime.now().year + 1}" in halfway["tablespaces"]
    placed = {p[0]: p[2] for p in halfway["partitions"]}
    assert placed[f"t_ebill_detail_{old_year}"] == "ts_ebill_archive" and placed[blocked] == f"ts_ebill_{old_year}"
    # the slot of a run killed hard is freed by hand (README: duty slot)
    subprocess.run([sys.executable, "-m", "prefect", "global-concurrency-limit", "update", f"ebops:{ye_site}:year_end",
                    "--active-slots", "0"], env=env, check=True, capture_output=True, timeout=120)

    resumed = _run(ye_site, mode="execute")
    assert resumed.verdict is Status.OK, [(r.target, r.status, r.reason) for r in resumed.results if r.status is not Status.OK]
    by_step = {r.target: r for r in resumed.results if r.check == "year_end_step"}
    assert by_step[f"compact:ebill.t_ebill_detail_{old_year}"].code == "already_done"
    assert by_step[f"compact:ebill.{blocked}"].code == "ok"  # the step the kill interrupted, run again
    from tasks.evidence.store import open_store

    store = open_store(load_site(ye_site).evidence)
    report = store.get(resumed.bundle.prefix + "report.md").decode()
    assert "同一方案的此前运行" in report and "否（被中断）" in report and f"compact:ebill.{blocked}" in report
    import json

    ctx = json.loads(store.get(resumed.bundle.prefix + "result.json"))["context"]
    [killed] = ctx["earlier_runs"]
    assert killed["interrupted_in"] == [f"compact:ebill.{blocked}"] and not killed["finished"]
    table = ctx["before_after"]
    assert len(table) == 4 and all(r["equal"] for r in table), table
    with _admin(ye_pg) as conn:
        rows_after = {r[0]: r[1] for r in conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM ebill.t_ebill_main GROUP BY 1")}
        writable = conn.execute(f"SELECT has_table_privilege('ebill_app', 'ebill.{blocked}', 'INSERT')").fetchone()[0]
    assert rows_after == rows_before and not writable
    assert {p[0]: p[2] for p in _snapshot(ye_pg)["partitions"]}[blocked] == "ts_ebill_archive"

    settled = _snapshot(ye_pg)
    again = _run(ye_site, mode="execute")
    assert again.verdict is Status.OK
    assert {r.code for r in again.results if r.check == "year_end_step"} == {"already_done"}
    assert _snapshot(ye_pg) == settled  # same files (relfilenode), places, comments, grants
