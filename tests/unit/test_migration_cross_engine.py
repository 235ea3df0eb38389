"""Cross-engine (信创) migration, Oracle -> PostgreSQL family, the parts that need no server: the site
file's per-side dialect and schema and their refusals, each phase reading each side in its own
dialect, the ora2pg commands, the sampled bills compared through the canonical text.

No Oracle runs here: the Oracle side is a stand-in that answers the statements with values built as
python-oracledb returns them (NUMBER as Decimal, DATE as datetime, '' already NULL) and records which
statements it was asked, so the tests check that the Oracle side is read with Oracle's SQL and the
target with PostgreSQL's. tests/integration/test_cross_engine_verify_pg.py does the same against a
real PostgreSQL target.
"""
from __future__ import annotations

import shlex
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

import pytest
import sqlglot

from config.migration import ORA2PG_EXPORT, ORA2PG_LOAD
from config.problems import SiteConfigError
from config.settings import load_site
from tasks.migration import db, plan_doc
from tasks.migration.journal import PhaseRun
from tests.unit.test_migration_pure import FACTS, _Session, migration, site_dir  # noqa: F401 - the fixture


def _cross(export="ora2pg", load="ora2pg", **extra):
    def edit(d):
        mig = d["migration"]
        mig["source"].update(dialect="oracle", schema="EBILL", tools_dir="/u01/app/oracle/product/19c")
        mig["source"]["database"]["dsn"] = "db1.hosp:1521/ebill"
        mig["target"].update(dialect="postgresql", schema="ebill")
        mig["cross_engine"] = {"work_dir": "/srv/ora2pg/ebill", "ora2pg_conf": "/etc/ora2pg/ebill.conf",
                               "export": {"host": "db2", "argv": export}, "load": {"host": "db2", "argv": load}, **extra}
    return edit


def _problem(site_dir, *edits) -> str:  # noqa: F811
    def edit(d):
        for e in edits:
            e(d)
    site_dir(edit)
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    return str(exc.value)


def test_an_older_site_file_reads_each_side_in_the_one_dialect(site_dir):  # noqa: F811
    cfg = load_site("demo").migration
    assert (cfg.source.engine, cfg.target.engine, cfg.source.schema, cfg.target.schema) == \
        ("postgresql", "postgresql", "ebill", "ebill")
    assert not cfg.across_engines and cfg.cross_engine is None


def test_oracle_source_postgresql_target_with_the_confirmed_ora2pg_commands(site_dir):  # noqa: F811
    site_dir(_cross())
    cfg = load_site("demo").migration
    assert cfg.across_engines and (cfg.source.engine, cfg.source.schema) == ("oracle", "EBILL")
    m = migration(load_site("demo"))
    from tasks.migration import cross_engine

    exp, ld = cross_engine.argv(m, "export"), cross_engine.argv(m, "load")
    assert exp[:2] == ORA2PG_EXPORT[:2] and exp[-4:] == ["/srv/ora2pg/ebill", "/etc/ora2pg/ebill.conf", "EBILL", "ebill"]
    assert ld[-5:] == ["/srv/ora2pg/ebill", "127.0.0.1", "9", "postgres", "ebill"]     # the demo's target DSN
    assert not any("{" in a for a in exp + ld) and not any("password" in a.lower() for a in exp + ld)
    plan = plan_doc.build_plan(m, dict(FACTS), "张工")
    ids = [s.id for s in plan.steps]
    assert "backup:cross_engine_export" in ids and "transfer:cross_engine_load" in ids
    assert "transfer:copy" not in ids and "pg_dump" not in plan_doc.render_plan(plan)
    step = next(s for s in plan.steps if s.id == "transfer:cross_engine_load")
    assert shlex.split(step.text) == ld and "确认采用文档中的 ora2pg 命令模板" in step.expect
    assert "内容指纹不可比" in next(s for s in plan.steps if s.id == "verify:all").text


def test_own_commands_with_placeholders_and_the_plan_changes_with_them(site_dir):  # noqa: F811
    site_dir(_cross())
    a = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    site_dir(_cross(load=["/opt/kingbase/bin/ksql", "-h", "{target_host}", "-f", "{work_dir}/all.sql"]))
    m = migration(load_site("demo"))
    from tasks.migration import cross_engine

    assert cross_engine.argv(m, "load") == ["/opt/kingbase/bin/ksql", "-h", "127.0.0.1", "-f", "/srv/ora2pg/ebill/all.sql"]
    assert plan_doc.build_plan(m, dict(FACTS), "张工").sha256() != a.sha256()


@pytest.mark.parametrize("edits, field, words", [
    ([_cross(), lambda d: d["migration"].pop("cross_engine")], "cross_engine", "argv: ora2pg"),
    ([_cross(), lambda d: d["migration"]["source"].update(dialect="postgresql"),
      lambda d: d["migration"]["target"].update(dialect="oracle")], "target.dialect", "openGauss and KingbaseES"),
    ([_cross(load=["psql", "{password}"])], "cross_engine.load.argv", "{password}"),
    ([_cross(), lambda d: d["migration"].update(dump_command=["x"])], "dump_command", "cross_engine.export"),
    ([_cross(), lambda d: d["migration"]["cross_engine"].update(ora2pg_conf="")], "cross_engine.ora2pg_conf", "ora2pg.conf"),
    ([_cross(), lambda d: d["migration"].update(oracle_method="rman_duplicate")], "oracle_method", "cross_engine"),
    ([lambda d: d["migration"]["target"].update(schema="other")], "target.schema", "same schema"),
    ([lambda d: d["migration"].update(cross_engine={"work_dir": "/w", "export": {"host": "db2", "argv": "ora2pg"},
                                                    "load": {"host": "db2", "argv": "ora2pg"}})], "cross_engine", "both sides"),
    ([_cross(), lambda d: d["migration"]["cross_engine"]["export"].update(host="conv9")],
     "migration.cross_engine.export.host", "conv9"),
    ([_cross(), lambda d: d["migration"]["source"].update(dialect="mysql")], "migration.source.dialect", "oracle"),
])
def test_refusals_name_the_field(site_dir, edits, field, words):  # noqa: F811
    text = _problem(site_dir, *edits)
    assert field in text and words in text, text


def test_the_ora2pg_templates_are_argv_a_shell_runs_as_meant(tmp_path):
    """The templates' scripts with stand-in ora2pg and psql that print what they were given."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ora2pg", "psql"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*"\n')
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    values = {"{work_dir}": str(tmp_path), "{ora2pg_conf}": "/etc/o.conf", "{source_schema}": "EBILL",
              "{target_schema}": "ebill", "{target_host}": "db2", "{target_port}": "5432",
              "{target_admin_user}": "postgres", "{target_database}": "ebill"}
    fill = lambda argv: [values.get(a, a) for a in argv]   # noqa: E731
    out = subprocess.run(fill(ORA2PG_EXPORT), capture_output=True, text=True, env=env, timeout=30, check=True).stdout
    assert out.splitlines() == [f"ora2pg -c /etc/o.conf -n EBILL -N ebill -t {t} -o {f} -b {tmp_path}"
                                for t, f in (("TABLE", "tables.sql"), ("COPY", "data.sql"))]
    out = subprocess.run(fill(ORA2PG_LOAD), capture_output=True, text=True, env=env, timeout=30, check=True).stdout
    assert out.splitlines() == [f"psql -X -w -q -v ON_ERROR_STOP=1 --single-transaction -h db2 -p 5432 -U postgres "
                                f"-d ebill -f {f}" for f in ("tables.sql", "data.sql")]


# ---------------------------------------------------------------- each side in its own dialect

class StandIn:
    """Both databases as canned answers by dialect, recording each statement (Oracle's: no Oracle here)."""

    def __init__(self, answers: dict[str, dict[str, list[dict]]]):
        self.answers, self.asked = answers, []

    @contextmanager
    def session(self, cfg, side, snapshot=True):
        def fetch(st):
            self.asked.append((side.engine, st.sql, dict(st.params)))
            return next((rows for word, rows in self.answers[side.engine].items() if word in st.sql), [])
        yield fetch


ORACLE = {"v$version": [{"version": "Oracle Database 19c Enterprise Edition", "num": "19.0.0.0.0"}],
          "SUM(bytes)": [{"bytes": Decimal(52428800)}], "DISTINCT tablespace_name": [{"name": "EBILL_DATA"}],
          "t_ebill_main": [{"newest": datetime(2026, 12, 2, 9, 30), "bills": Decimal(1200)}]}
POSTGRES = {"version()": [{"version": "PostgreSQL 9.2.4 (openGauss 5.0.1)", "num": "90204"}],
            "pg_class c JOIN pg_namespace": [{"n": 0}], "pg_tablespace": [{"name": "pg_default"}],
            "system_identifier": [{"ident": "7000000000000000001"}]}


def test_preflight_and_freeze_read_the_oracle_source_in_oracle_and_the_target_in_postgresql(site_dir, monkeypatch):  # noqa: F811
    from tasks.migration import freeze, preflight

    site_dir(_cross())
    m = migration(load_site("demo"))
    dbs = StandIn({"oracle": ORACLE, "postgresql": POSTGRES})
    monkeypatch.setattr(db, "side_session", dbs.session)
    m.session = lambda name: (_ for _ in ()).throw(ConnectionError("no ssh in a unit test"))   # type: ignore[method-assign]
    ph = PhaseRun("preflight", "demo")
    preflight.versions_and_size(m, ph)
    by = {r.title.split("：", 1)[1]: r for r in ph.results}
    assert by["数据库版本"].status.value == "OK" and "跨引擎" in by["数据库版本"].reason     # 19 -> 9: not compared
    assert by["目标库为空"].status.value == "OK" and by["表空间"].status.value == "OK"
    assert ph.facts["data_bytes"] == 52428800
    assert {(d, p["schema"]) for d, _sql, p in dbs.asked if "schema" in p} == {("oracle", "EBILL")}   # bound, upper-case
    for dialect, sql, _ in dbs.asked:
        sqlglot.parse_one(sql.format(schema='"EBILL"'), read="oracle" if dialect == "oracle" else "postgres")
    assert any(d == "oracle" and "dba_segments" in s for d, s, _ in dbs.asked)
    assert any(d == "postgresql" and "pg_class" in s for d, s, _ in dbs.asked)
    assert not any(d == "postgresql" and "dba_" in s for d, s, _ in dbs.asked)
    dbs.asked.clear()
    assert freeze.newest_bill(m) == ("2026-12-02 09:30:00", 1200)
    (dialect, sql, _), = dbs.asked
    assert dialect == "oracle" and '"EBILL".t_ebill_main' in sql


def test_the_cut_over_identity_is_read_in_the_targets_dialect(site_dir, monkeypatch):  # noqa: F811
    from tasks.migration import cutover

    site_dir(_cross())
    m = migration(load_site("demo"))
    dbs = StandIn({"oracle": ORACLE, "postgresql": POSTGRES})
    monkeypatch.setattr(db, "side_session", dbs.session)
    monkeypatch.setattr(cutover, "wait_healthy", lambda urls, t: (True, {"system_identifier": "7000000000000000001",
                                                                         "datasource": "db2"}, ""))
    monkeypatch.setattr("tasks.migration.preflight.app_health", lambda *a, **k: True)
    ph = PhaseRun("smoke", "demo")
    assert cutover.end_downtime(m, ph, m.cfg.target, "app2")
    (dialect, sql, _), = dbs.asked
    assert dialect == "postgresql" and "pg_control_system" in sql


def test_export_and_load_run_over_ssh_with_masked_transcripts_and_no_load_over_leftovers(site_dir, monkeypatch):  # noqa: F811
    from tasks.migration import transfer

    site_dir(_cross())
    m = migration(load_site("demo"))
    host = _Session({"ora2pg": (0, "[========================>] 7/7 tables (100.0%) payer 张三 13812345678\n"),
                     "psql": (0, "")})
    m.session = lambda name: host                              # type: ignore[method-assign]
    backup = PhaseRun("backup", "demo")
    transfer.final_backup(m, backup)
    assert backup.results[-1].status.value == "OK" and "ora2pg" in host.ran[0][2]
    assert "13812345678" not in m.files["migration_export.log"] and "7/7 tables" in m.files["migration_export.log"]
    assert "13812345678" not in backup.commands[0].output
    moved = PhaseRun("transfer", "demo")
    transfer.copy_and_restore(m, moved, again=False)
    assert moved.results[-1].status.value == "OK" and "psql" in host.ran[1][2] and moved.facts["transfer_method"] == "cross_engine"
    dbs = StandIn({"postgresql": {"pg_class c JOIN pg_namespace": [{"n": 3}]}})
    monkeypatch.setattr(db, "side_session", dbs.session)
    again = PhaseRun("transfer", "demo")
    transfer.copy_and_restore(m, again, again=True)
    assert len(host.ran) == 2 and again.results[-1].code == "migration_target_not_empty"
    failed = _Session({"psql": (3, "psql:tables.sql:12: ERROR:  type \"number\" does not exist\n")})
    m.session = lambda name: failed                            # type: ignore[method-assign]
    bad = PhaseRun("transfer", "demo")
    transfer.copy_and_restore(m, bad, again=False)
    assert bad.results[-1].code == "migration_transfer_failed" and "退出码 3" in bad.results[-1].reason


def test_sampled_bills_compare_through_the_canonical_text():
    from tasks.migration.verify_cross import bill_fields_differ

    ora = {"ID": Decimal("20260001"), "BILL_CODE": "0A01    ", "TOTAL_AMT": Decimal("12.5"), "MEMO": None,
           "IVC_DATETIME": datetime(2026, 12, 2, 9, 30), "RED_FLAG": Decimal("0")}
    pg = {"id": 20260001, "bill_code": "0A01    ", "total_amt": Decimal("12.50"), "memo": "",
          "ivc_datetime": datetime(2026, 12, 2, 9, 30), "red_flag": False}
    assert bill_fields_differ(ora, pg, {"bill_code"}) == []
    assert bill_fields_differ(ora, {**pg, "total_amt": Decimal("12.51")}, set()) == ["total_amt"]
    assert bill_fields_differ(ora, None, set()) == ["整行缺失"]
    assert bill_fields_differ(ora, {k: v for k, v in pg.items() if k != "memo"}, set()) == ["memo"]


def test_a_table_without_a_key_is_compared_as_a_multiset_across_engines_only():
    from tasks.backup.verify.catalog import TableShape
    from tasks.backup.verify.fingerprint_names import Column
    from tasks.migration.rowcheck import Side, compare_schema
    from tests.unit.test_migration_rowcheck import _side

    ora_log = TableShape("T_OP_LOG", (Column("OP", "VARCHAR2"), Column("AMT", "NUMBER")), ())
    pg_log = TableShape("t_op_log", (Column("op", "character varying(20)"), Column("amt", "numeric(14,2)")), ())
    ora = [("开票", Decimal("1.5")), ("开票", Decimal("1.5")), ("冲红", None)]
    pg = [("冲红", None), ("开票", Decimal("1.50")), ("作废", Decimal("2.00"))]     # one 开票 less, one 作废 more
    t, = compare_schema(_side("oracle", ora_log, ora), _side("postgresql", pg_log, pg))
    assert (t.source_rows, t.target_rows, t.missing, t.extra, t.differing) == (3, 3, 1, 1, 0) and not t.not_compared
    assert t.keys["missing"][0].startswith("无主键行 sha256:")
    t, = compare_schema(_side("oracle", ora_log, ora), _side("postgresql", pg_log, list(reversed(ora))))
    assert t.differences == 0 and t.source_rows == 3                       # any order: no key to order by
    same, = compare_schema(_side("postgresql", pg_log, pg), _side("postgresql", pg_log, pg))
    assert "无主键" in same.not_compared                                  # one engine: the fingerprints cover it
    big, = compare_schema(_side("oracle", ora_log, ora), _side("postgresql", pg_log, pg), max_rows=2,
                          counts={"T_OP_LOG": 3})
    assert "跨引擎时库内指纹不可比" in big.not_compared and big.count_only
    keyed = TableShape("t_op_log", pg_log.columns, ("op",))
    same_big, = compare_schema(_side("postgresql", keyed, pg), _side("postgresql", keyed, pg), max_rows=2,
                               counts={"t_op_log": 3})
    assert "verify_rows_max_table_rows=2" in same_big.not_compared and not same_big.count_only  # fingerprints cover it
    assert isinstance(_side("oracle", ora_log, []), Side)


def test_the_smoke_tests_inspection_reads_the_new_engine_in_its_dialect(site_dir):  # noqa: F811
    def oracle_site(d):
        d["database"].update(dialect="oracle", dsn="db1.hosp:1521/ebill", schema="EBILL_CANON")
        d["migration"]["target"]["inspection_dsn"] = "host=db2.hosp port=5432 dbname=ebill"
    site_dir(lambda d: (_cross()(d), oracle_site(d)))
    after = migration(load_site("demo")).after_site()
    assert (after.database.dialect, after.database.schema_name, after.database.dsn) == \
        ("postgresql", "ebill_canon", "host=db2.hosp port=5432 dbname=ebill")
