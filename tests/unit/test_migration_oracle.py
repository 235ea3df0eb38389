"""The migration's Oracle parts that run inside the phases: the after-restore checks
(oracle.AFTER_RESTORE_SQL) in verify, the DQ suites on an Oracle target, the estimate of RMAN
DUPLICATE, and the verification account's grants for every dictionary view the migration reads.
No Oracle runs here: the database is a stand-in that answers canned rows and parses every statement
it receives with sqlglot's oracle dialect (the live run: tests/integration/test_migration_contract.py).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from config.settings import load_site
from tasks.core.results import Status
from tasks.migration import after_restore, db, oracle, plan_doc, verify
from tasks.migration.journal import PhaseRun
from tests.unit import test_migration_pure as pure
from tests.unit.test_migration_pure import FACTS, _to_oracle, migration
from tests.unit.test_sql_scripts import SAMPLE, sqlplus_statements

REPO = Path(__file__).resolve().parents[2]
site_dir = pure.site_dir  # the demo site file in a temporary folder (a fixture)


class CannedOracle:
    """A stand-in for one Oracle side's fetch (no Oracle here): every statement must parse as
    Oracle SQL and bind exactly the :names it uses; the rows come from `answers` (a fragment of the
    statement's text -> rows, lower-case column names as oracle_fetch returns them)."""

    def __init__(self, answers: dict[str, list[dict]]):
        self.answers, self.seen = answers, []

    def __call__(self, st) -> list[dict]:
        sqlglot.parse_one(st.sql, read="oracle")
        assert set(re.findall(r":(\w+)", st.sql)) == set(st.params), st
        self.seen.append(st)
        return next(rows for frag, rows in self.answers.items() if frag in st.sql)


def _sides(monkeypatch, source: CannedOracle, target: CannedOracle, m) -> None:
    @contextmanager
    def side_session(cfg, side, *, snapshot=True):
        yield source if side is m.cfg.source else target
    monkeypatch.setattr(db, "side_session", side_session)


OPEN = {"v$database": [{"name": "EBILL", "open_mode": "READ WRITE"}]}


def test_after_restore_checks_pass_on_an_open_target_without_new_invalid_objects(site_dir, monkeypatch):
    site_dir(_to_oracle())
    m = migration(load_site("demo"))
    old = [{"object_type": "PACKAGE BODY", "object_name": "PKG_OLD_REPORT"}]
    src, tgt = CannedOracle({"dba_objects": old}), CannedOracle({**OPEN, "dba_objects": old})
    _sides(monkeypatch, src, tgt, m)
    ph = PhaseRun("verify", "demo")
    after_restore.run(m, ph)
    mode, invalid = ph.results
    assert mode.status is Status.OK and "OPEN READ WRITE" in mode.reason
    assert invalid.status is Status.WARN and "源库原已失效" in invalid.reason and "PKG_OLD_REPORT" in invalid.reason
    assert src.seen[0].params == {"schema": "EBILL"} and tgt.seen[-1].params == {"schema": "EBILL"}
    assert "SELECT name, open_mode FROM v$database" in ph.commands[0].command


def test_after_restore_fails_on_new_invalid_objects_and_a_target_not_open_read_write(site_dir, monkeypatch):
    site_dir(_to_oracle("rman_duplicate"))
    m = migration(load_site("demo"))
    new = [{"object_type": "VIEW", "object_name": f"V_BILL_{i}"} for i in range(12)]
    _sides(monkeypatch, CannedOracle({"dba_objects": []}),
           CannedOracle({"v$database": [{"name": "EBILL", "open_mode": "MOUNTED"}], "dba_objects": new}), m)
    ph = PhaseRun("verify", "demo")
    after_restore.run(m, ph)
    mode, invalid = ph.results
    assert mode.status is Status.FAIL and mode.code == "migration_not_open" and "MOUNTED" in mode.reason
    assert invalid.status is Status.FAIL and invalid.code == "migration_invalid_objects"
    assert "12 个对象恢复后失效" in invalid.reason and "VIEW V_BILL_0" in invalid.reason and "等 12 个" in invalid.reason
    assert invalid.value == 12 and "utlrp.sql" in invalid.reason


def test_after_restore_is_an_error_record_when_a_side_cannot_be_read_and_absent_for_postgresql(site_dir, monkeypatch):
    m = migration(load_site("demo"))
    ph = PhaseRun("verify", "demo")
    after_restore.run(m, ph)      # the demo is PostgreSQL: nothing to check
    assert ph.results == []
    site_dir(_to_oracle())
    m = migration(load_site("demo"))

    @contextmanager
    def refused(cfg, side, *, snapshot=True):
        raise ConnectionError("cannot connect to Oracle (db2.hosp:1521/ebill) as ebops_verify: ORA-01017")
        yield
    monkeypatch.setattr(db, "side_session", refused)
    after_restore.run(m, ph)
    assert ph.results[0].status is Status.ERROR and "ORA-01017" in ph.results[0].reason


def test_verify_runs_the_after_restore_checks_first_on_oracle(site_dir, monkeypatch):
    site_dir(_to_oracle())
    m = migration(load_site("demo"))
    order = []
    monkeypatch.setattr(after_restore, "run", lambda m, ph: order.append("after_restore"))
    monkeypatch.setattr(verify, "compare", lambda m, ph: order.append("compare"))
    monkeypatch.setattr(verify, "quality_on_target", lambda m, ph: order.append("quality"))
    verify.run(m, PhaseRun("verify", "demo"))
    assert order == ["after_restore", "compare", "quality"]


def _oracle_site(d):
    _to_oracle()(d)
    d["database"].update(dialect="oracle", dsn="db1.hosp:1521/ebill", schema="EBOPS")


def test_dq_suites_run_on_an_oracle_target_through_the_oracle_session(site_dir, monkeypatch):
    """The wiring only (a stand-in for the session and the GX run): the target's DSN, the
    verification account, dialect oracle and the canonical views' owner EBOPS."""
    import tasks.connect.database as database
    import tasks.quality.gx_run as gx_run
    import tasks.quality.records as records

    site_dir(_oracle_site)
    m = migration(load_site("demo"))
    seen = {}

    class Session:
        def close(self):
            seen["closed"] = True
    monkeypatch.setattr(database, "connect", lambda cfg: seen.update(cfg=cfg) or Session())
    monkeypatch.setattr(gx_run, "run_suites", lambda conn, canon, start, end, now: seen.update(canon=canon) or "run")
    monkeypatch.setattr(records, "summarise", lambda run: [])
    ph = PhaseRun("verify", "demo")
    verify.quality_on_target(m, ph)
    cfg = seen["cfg"]
    assert (cfg.dialect, cfg.dsn, cfg.schema_name, seen["canon"]) == ("oracle", "db2.hosp:1521/ebill", "EBOPS", "EBOPS")
    assert cfg.user == m.cfg.target.database.user and seen["closed"]
    assert ph.results[0].status is Status.OK and "均可在目标库执行" in ph.results[0].reason


def test_dq_rules_that_cannot_run_on_an_oracle_target_name_the_views_script(site_dir, monkeypatch):
    import tasks.connect.database as database
    import tasks.quality.gx_run as gx_run
    import tasks.quality.records as records

    class Broken:
        rule_id, errors, failing = "DQ01", ["ORA-00942: table or view does not exist"], []

    site_dir(_oracle_site)
    m = migration(load_site("demo"))
    monkeypatch.setattr(database, "connect", lambda cfg: type("S", (), {"close": lambda self: None})())
    monkeypatch.setattr(gx_run, "run_suites", lambda *a: "run")
    monkeypatch.setattr(records, "summarise", lambda run: [Broken()])
    ph = PhaseRun("verify", "demo")
    verify.quality_on_target(m, ph)
    assert ph.results[0].status is Status.FAIL and "01_canonical_views.sql" in ph.results[0].reason


# ---------------------------------------------------------------- the estimate of RMAN DUPLICATE
def test_rman_duplicate_estimate_has_no_dump_copy_or_restore():
    facts = {"sample_mib_s": 10, "data_bytes": 100 * 1048576, "dump_bytes_estimate": 20 * 1048576,
             "database_bytes": 300 * 1048576}
    dp = plan_doc.estimate_downtime(facts, 6)
    rman = plan_doc.estimate_downtime(facts, 6, duplicate=True)
    assert rman["dump"] == rman["copy"] == rman["restore"] == 0 and rman["duplicate"] == 30.0   # the whole database
    assert rman["verify"] == dp["verify"] == 10.0 and "duplicate" not in dp
    assert rman["total"] == 6 + 30 + 10 + plan_doc.FIXED_OVERHEAD_S
    no_whole = plan_doc.estimate_downtime({k: v for k, v in facts.items() if k != "database_bytes"}, 6, duplicate=True)
    assert no_whole["duplicate"] == 10.0          # a plan without the database's size: the schema's


def test_rman_duplicate_plan_states_the_estimate_without_a_dump(site_dir):
    site_dir(_to_oracle("rman_duplicate"))
    plan = plan_doc.build_plan(migration(load_site("demo")), {**FACTS, "database_bytes": 400 * 1048576}, "张工")
    est = plan.facts["estimate_s"]
    assert est["duplicate"] == 20.0 and est["dump"] == est["copy"] == est["restore"] == 0
    text = plan_doc.render_plan(plan)
    assert "RMAN DUPLICATE 复制整个数据库 20.0（400.0 MiB" in text and "备份 " not in text.split("预计停机时间")[1]
    site_dir(_to_oracle("datapump"))
    assert "duplicate" not in plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工").facts["estimate_s"]


# ---------------------------------------------------------------- the verification account's grants
def _dictionary_views(sql: str) -> set[str]:
    tree = sqlglot.parse_one(sql.format(schema='"EBILL"'), read="oracle")
    names = {t.name.upper() for t in tree.find_all(exp.Table) if not t.db}
    return {n.replace("V$", "V_$") for n in names}


def test_the_verify_account_is_granted_every_dictionary_view_the_migration_reads():
    """SELECT ANY TABLE does not reach the data dictionary: each view is granted by name."""
    read = set().union(*(_dictionary_views(s) for s in [*db.SQL["oracle"].values(), *oracle.AFTER_RESTORE_SQL.values()]))
    assert read >= {"DBA_SEGMENTS", "DBA_OBJECTS", "DBA_DATA_FILES", "V_$DATABASE", "V_$INSTANCE", "V_$VERSION"}
    granted = set()
    for st in sqlplus_statements(REPO / "config" / "sql" / "oracle" / "03_verify_account.sql", SAMPLE):
        m = re.match(r"GRANT SELECT ON SYS\.(\w+\$?\w*) TO", st, re.I)
        if m:
            granted.add(m.group(1).upper())
    assert read <= granted, sorted(read - granted)


@pytest.mark.parametrize("name", sorted(oracle.AFTER_RESTORE_SQL))
def test_after_restore_statements_bind_the_schema_or_nothing(name):
    sql = oracle.AFTER_RESTORE_SQL[name]
    sqlglot.parse_one(sql, read="oracle")
    assert set(re.findall(r":(\w+)", sql)) <= {"schema"}


def test_datapump_moves_the_canonical_views_owner_with_the_vendors_schema(site_dir):
    """As a PostgreSQL dump carries ebill_canon: the views the DQ rules read (and the vendor's
    grants to their owner, which impdp cannot import without it) go with the data."""
    site_dir(_oracle_site)
    m = migration(load_site("demo"))
    m.facts["plan_id"] = "20261202_120000"
    from tasks.migration import transfer

    assert "SCHEMAS=EBILL,EBOPS" in transfer.dump_argv(m) and "SCHEMAS=EBILL,EBOPS" in transfer.restore_argv(m)
    assert verify.canon_schema(m) == "EBOPS"
    site_dir(lambda d: (_oracle_site(d), d["database"].update(schema="ebill")))   # views in the vendor's own schema
    m = migration(load_site("demo"))
    assert "SCHEMAS=EBILL" in transfer.dump_argv(m) and not any(a.startswith("SCHEMAS=EBILL,") for a in transfer.dump_argv(m))
