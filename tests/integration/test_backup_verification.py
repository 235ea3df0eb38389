"""The quarterly backup-restore verification end to end, under the Prefect test harness, against
the sandbox hospital: real pg_dump/pg_restore over real SSH, a real scratch database, production
kept busy by the traffic generator while the flow runs."""
from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from config.settings import load_site
from flows.backup_verification import VerifyParams, backup_verification
from flows.common import VerdictFailed
from sandbox import manager, postgres, scenarios_backup
from sandbox.traffic import Traffic
from tasks.evidence.store import open_store
from tasks.core.reason_codes import Code
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox
STEPS = ["1. 定位备份", "2. 不恢复校验", "3. 恢复到临时库", "4. 比对校验", "5. 清理临时库"]


@pytest.fixture()
def admin(sandbox):
    state = sandbox["state"]["postgres"]
    return postgres.admin_conninfo(state, manager.credentials())


@pytest.fixture(autouse=True)
def _standing_approval(request):
    """The demo site's verifications run under its recorded standing approval (QH 9.1.2)."""
    if "admin" in request.fixturenames:
        request.getfixturevalue("approve_standing")("demo")


def scratch_databases(admin: str) -> list[str]:
    with psycopg.connect(admin) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ebops_verify_%'")]


@pytest.fixture()
def backup_folder(sandbox):
    """db1's backup folder and log as they were, put back after the test (scenario files removed),
    so later tests still see the sandbox's good nightly backup as the newest."""
    folder = Path(sandbox["root"]) / "hosts" / "db1" / "backup"
    log = folder / "backup.log"
    before_files, before_log = set(folder.iterdir()), log.read_text()
    yield folder
    for f in set(folder.iterdir()) - before_files:
        f.unlink()
    log.write_text(before_log)


def run(**params):
    """The flow's outcome (or the outcome carried by its VerdictFailed) and the Prefect state."""
    state = backup_verification(VerifyParams(site="demo", **params), return_state=True)
    if state.is_completed():
        return state.result(), state
    with pytest.raises(VerdictFailed) as failed:
        state.result()
    return failed.value.outcome, state


def by_check(outcome, prefix: str) -> list:
    return [r for r in outcome.results if r.check.startswith(prefix)]


def stored(outcome, name: str) -> bytes:
    return open_store(load_site("demo").evidence).get(outcome.bundle.prefix + name)


def test_good_backup_verifies_passed_under_traffic_and_scratch_is_dropped(prefect_harness, sites_dir, admin,
                                                                          backup_folder):
    with Traffic(admin) as traffic:
        outcome, state = run(engineer="测试工程师")
    assert traffic.issued > 0 and traffic.updated > 0  # production really changed meanwhile
    assert state.is_completed(), [(r.title, r.status, r.reason) for r in outcome.results if r.status is not Status.OK]
    assert outcome.verdict is Status.OK
    checks = {r.check for r in outcome.results}
    assert {"backup_locate", "backup_validate", "backup_restore", "restore_inventory", "restore_row_count",
            "restore_fingerprint", "backup_verify", "backup_cleanup"} <= checks
    assert scratch_databases(admin) == []
    fingerprinted = {r.target for r in by_check(outcome, "restore_fingerprint")}
    assert {"t_ebill_main", "t_ebill_detail", "t_bill_stock"} <= fingerprinted
    # the record: every step in order, with times; the scope says only pre-backup rows were compared
    report = stored(outcome, "report.md").decode()
    positions = [report.index(s) for s in STEPS]
    assert positions == sorted(positions)
    assert "通过（PASSED）" in report and "ivc_datetime" in json.dumps(json.loads(stored(outcome, "result.json")),
                                                                    ensure_ascii=False)
    result = json.loads(stored(outcome, "result.json"))
    assert result["verdict"] == "OK" and result["context"]["steps"][2]["seconds"] > 0
    assert all(s["status"] == "OK" for s in result["context"]["steps"])
    # the quality suites ran on the restored copy: every rule executed there
    [dq] = [r for r in outcome.results if "数据质量规则" in r.title]
    assert (dq.status, dq.code, dq.value) == (Status.OK, Code.OK, 0), dq.reason  # no rule that cannot run
    on_copy = json.loads(stored(outcome, "restored_quality.json"))
    assert len(on_copy["rules"]) == 22 and on_copy["rules"]["DQ06"]["checked"] > 0
    assert all(not rule["errors"] for rule in on_copy["rules"].values())


def test_backup_taken_in_a_snapshot_compares_every_row_under_traffic(prefect_harness, sites_dir, admin,
                                                                     backup_folder):
    with Traffic(admin) as traffic:
        outcome, state = run(take_backup=True)
    assert traffic.issued > 0
    assert state.is_completed(), [(r.title, r.reason) for r in outcome.results if r.status is not Status.OK]
    locate = by_check(outcome, "backup_locate")[0]
    assert "pg_dump --snapshot=" in locate.reason
    # whole tables: the counts are production's as of the snapshot, not a cut-off
    counts = {r.target: r for r in by_check(outcome, "restore_row_count")}
    assert "全表" in counts["t_ebill_main"].reason
    assert stored(outcome, "source_fingerprints.json")


def test_truncated_backup_fails_at_validation_and_is_not_restored(prefect_harness, sites_dir, admin, backup_folder):
    scenarios_backup.place("truncated")
    outcome, state = run()
    assert state.is_failed()
    validate = by_check(outcome, "backup_validate")[0]
    # the table of contents reads (value: its entries), the full read fails
    assert (validate.status, validate.code) == (Status.FAIL, Code.BACKUP_CORRUPT) and validate.value > 0, validate.reason
    restore = by_check(outcome, "backup_restore")[0]
    # not restored, and not reported as passed
    assert (restore.status, restore.code) == (Status.SKIPPED, Code.EARLIER_STEP_FAILED)
    assert scratch_databases(admin) == []


def test_backup_with_one_flipped_byte_fails_at_validation_and_is_not_restored(prefect_harness, sites_dir, admin,
                                                                            backup_folder):
    path = scenarios_backup.place("flipped_byte")
    outcome, state = run()
    assert state.is_failed() and outcome.verdict is not Status.OK
    [locate] = by_check(outcome, "backup_locate")
    assert (locate.status, locate.target, locate.value) == (Status.OK, str(path), path.stat().st_size)
    [validate] = by_check(outcome, "backup_validate")
    # same size as a good dump and a readable table of contents, but a data block that does not decode
    assert (validate.status, validate.code) == (Status.FAIL, Code.BACKUP_CORRUPT) and validate.value > 0, validate.reason
    [restore] = by_check(outcome, "backup_restore")
    assert (restore.status, restore.code) == (Status.SKIPPED, Code.EARLIER_STEP_FAILED)
    assert not by_check(outcome, "restore_")  # nothing compared as if it had been restored
    assert scratch_databases(admin) == []


def test_backup_missing_a_table_fails_at_the_inventory(prefect_harness, sites_dir, admin, backup_folder):
    scenarios_backup.place("missing_table", table="t_his_settle")
    outcome, state = run()
    assert state.is_failed()
    assert by_check(outcome, "backup_validate")[0].status is Status.OK  # a readable archive...
    inventory = by_check(outcome, "restore_inventory")[0]
    assert (inventory.status, inventory.code) == (Status.FAIL, Code.OBJECTS_DIFFER)  # ...that lacks a table
    assert {o["name"] for o in json.loads(inventory.raw)["missing_in_restored"]} >= {"t_his_settle"}
    # the quality suites cannot run on a copy whose views lost their table: said, and the copy is still dropped
    [dq] = [r for r in outcome.results if "数据质量规则" in r.title]
    assert (dq.status, dq.code) == (Status.ERROR, Code.DATABASE_ERROR) and "his_settlement" in dq.reason, dq.reason
    assert scratch_databases(admin) == []


def test_backup_with_one_differing_row_fails_at_the_fingerprint(prefect_harness, sites_dir, admin, backup_folder):
    scenarios_backup.place("changed_row", bill_offset=1017)
    outcome, state = run()
    assert state.is_failed()
    bad = [r for r in outcome.results if r.status is not Status.OK]
    assert [(r.check, r.target, r.code) for r in bad] == [("restore_fingerprint", "t_ebill_main", Code.CHECKSUM_MISMATCH)], \
        [(r.check, r.target, r.reason) for r in bad]
    assert bad[0].value == 1 and "第 0 块" in bad[0].reason  # one chunk, named
    assert scratch_databases(admin) == []


def test_a_target_that_resolves_to_production_is_refused(prefect_harness, sites_dir, admin, backup_folder):
    with psycopg.connect(admin) as conn:
        before = conn.execute("SELECT count(*) FROM ebill.t_ebill_main").fetchone()[0]
    outcome, state = run(scratch_name="ebill")
    assert state.is_failed()
    restore = by_check(outcome, "backup_restore")[0]
    assert (restore.status, restore.code) == (Status.FAIL, Code.RESTORE_TARGET_REFUSED), restore.reason
    with psycopg.connect(admin) as conn:
        assert conn.execute("SELECT count(*) FROM ebill.t_ebill_main").fetchone()[0] == before
    cleanup = by_check(outcome, "backup_cleanup")[0]
    assert (cleanup.status, cleanup.code, cleanup.target) == (Status.OK, Code.OK, "")  # nothing created, nothing dropped


def test_an_oracle_site_without_approval_plans_rman_and_data_pump_steps_and_a_plan_is_not_passed(prefect_harness,
                                                                                                  sites_dir):
    """Plan mode only: without a recorded approval the flow only plans; for an Oracle site the plan
    is the Oracle backend's (nothing here can reach an Oracle server: the DSN points nowhere and is
    never used). The steps themselves are driven through recorded RMAN, Data Pump and SQL
    transcripts in tests/unit/test_backup_verify_oracle_tasks.py."""
    def oracle(data: dict) -> None:
        bv = data["backup_verification"]
        bv.update(dialect="oracle", oracle_sid="EBILL", schema="EBILL", tools_dir="/u01/app/oracle/product/19c",
                  cutoff_columns={"T_EBILL_MAIN": "IVC_DATETIME"}, mutable_columns={})
        for side in ("source", "scratch"):
            bv[side]["dsn"] = "127.0.0.1:9/NOWHERE"
        bv["scratch"]["prefix"] = "EBOPS_VERIFY_"
    site = sites_dir("oracle-plan", oracle)
    state = backup_verification(VerifyParams(site=site, take_backup=True), return_state=True)
    assert state.is_failed()
    with pytest.raises(VerdictFailed) as failed:
        state.result()
    outcome = failed.value.outcome
    assert [r.status for r in outcome.results] == [Status.SKIPPED] * 5
    assert {r.code for r in outcome.results} == {Code.APPROVAL_MISSING}
    text = " ".join(r.reason for r in outcome.results)
    assert "expdp FLASHBACK_SCN" in text and "RESTORE DATABASE VALIDATE CHECK LOGICAL" in text
    assert "REMAP_SCHEMA" in text and "DROP USER EBOPS_VERIFY_" in text
    report = open_store(load_site(site).evidence).get(outcome.bundle.prefix + "report.md").decode()
    assert "临时 schema EBOPS_VERIFY_" in report and "Oracle" in report and "不通过" in report
