"""The verify phase across engines (信创, Oracle -> PostgreSQL family) against a real PostgreSQL target.

No Oracle runs here (none in the sandbox, none on our machines), so the source is a STAND-IN: an
object that answers the Oracle statements the phase sends (Oracle's catalog query, upper-case quoted
names, Oracle's bound schema EBILL) from a scratch PostgreSQL copy of the sandbox's vendor schema,
and returns its values as python-oracledb would: column names as Oracle's catalog spells them,
catalog types as Oracle's (NUMBER, VARCHAR2, CHAR, DATE, TIMESTAMP), '' as NULL, a date as a
datetime, and in the row check's stream every number as Decimal (oracle.exact_values). Its copy is
created with the C collation, so its text keys come in Oracle's binary order. The target is a real
scratch PostgreSQL database read by the phase's own session code. Both copies come from one pg_dump
of the shared sandbox (read only: only the dump reads it); both are dropped after.

What this shows: the phase reads each side in its own dialect and, the copies being the same data,
says equal with every row compared; one changed amount on the target is named by its key (row check)
and by its field (the sampled bills). What it cannot show: a real Oracle's catalog and driver, ora2pg.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from config.migration import MigrationConfig
from tasks.backup.verify.catalog import ORACLE_COLUMNS_SQL, PG_COLUMNS_SQL
from tasks.connect.database.postgresql import pg_fetch, pg_stream
from tasks.core.results import Status
from tasks.migration import db, verify
from tasks.migration.canonical import key_label
from tasks.migration.journal import PhaseRun

pytestmark = pytest.mark.sandbox
_QUOTED = re.compile(r'"([A-Z][A-Z0-9_$#]*)"')


def oracle_type(pg: str) -> str:
    """The DATA_TYPE Oracle's catalog would show for the column ora2pg made from it."""
    if pg.startswith(("character varying", "text")):
        return "VARCHAR2"
    if pg.startswith(("character", "bpchar")):
        return "CHAR"
    if pg.startswith("timestamp"):
        return "TIMESTAMP(6) WITH TIME ZONE" if "with time zone" in pg else "TIMESTAMP(6)"
    return {"date": "DATE", "bytea": "BLOB"}.get(pg, "NUMBER")


def as_oracle(v, exact: bool):
    """A PostgreSQL value as python-oracledb returns it: '' is NULL, a date is a DATE (datetime);
    `exact` (the row check's output type handler): every NUMBER as Decimal."""
    if isinstance(v, bool):
        v = int(v)                                   # NUMBER(1)
    if isinstance(v, (str, bytes)) and not v:
        return None
    if isinstance(v, date) and not isinstance(v, datetime):
        return datetime(v.year, v.month, v.day)
    if exact and isinstance(v, int):
        return Decimal(v)
    return v


class OracleStandIn:
    """Stands in for an Oracle session (no Oracle here): Oracle's statements answered from a
    PostgreSQL copy, Oracle's names and values returned."""

    def __init__(self, conn: psycopg.Connection, pg_schema: str):
        self.conn, self.pg_schema = conn, pg_schema

    def _sql(self, text: str) -> str:
        assert "pg_" not in text and "COLLATE" not in text, "the stand-in was sent PostgreSQL's SQL"
        return _QUOTED.sub(lambda mt: f'"{mt.group(1).lower()}"', text)

    def fetch(self, st) -> list[dict]:
        if st.sql == ORACLE_COLUMNS_SQL:             # Oracle's catalog: from PostgreSQL's, spelled as Oracle's
            assert st.params == {"schema": self.pg_schema.upper()}
            names, rows = pg_fetch(self.conn, PG_COLUMNS_SQL, {"schema": self.pg_schema})
            return [{**r, "table_name": r["table_name"].upper(), "column_name": r["column_name"].upper(),
                     "data_type": oracle_type(r["data_type"]), "max_bytes": None}
                    for r in (dict(zip(names, row)) for row in rows)]
        names, rows = pg_fetch(self.conn, self._sql(st.sql), st.params)
        return [{n: as_oracle(v, False) for n, v in zip(names, row)} for row in rows]

    def stream(self, st, batch: int):
        for row in pg_stream(self.conn, self._sql(st.sql), st.params, batch):
            yield tuple(as_oracle(v, True) for v in row)


@pytest.fixture(scope="module")
def copies(sandbox, tmp_path_factory):
    from sandbox import manager
    from sandbox.scratch_db import vendor_copies

    state = sandbox["state"]["postgres"]
    names = {w: f"ebops_xeng_{w}_{os.getpid()}" for w in ("ora", "tgt")}
    with vendor_copies(state, manager.credentials(), names, tmp_path_factory.mktemp("xeng"),
                       c_collated=("ora",)) as dsns:   # the stand-in Oracle's copy: Oracle's binary sort
        yield dsns | {"schema": state.get("vendor_schema", "ebill"), "port": state["pg_port"], "tgt_name": names["tgt"]}


def _side(dialect: str, schema: str, host: str, dsn: str) -> dict:
    return {"dialect": dialect, "schema": schema, "db_host": host, "app_host": host.replace("db", "app"),
            "database": {"dsn": dsn, "user": "postgres", "password": {"env": "EBOPS_DEMO_DB_ADMIN_PASSWORD"}},
            "tools_dir": "/opt", "work_dir": "/w", "data_dir": "/d", "app_stop": ["x"], "app_start": ["x"]}


@pytest.fixture()
def migration(copies, monkeypatch):
    """The verify phase's view of a cross-engine migration: an Oracle source (the stand-in), the
    real scratch PostgreSQL target."""
    cfg = MigrationConfig.model_validate({
        "dialect": "oracle", "schema": copies["schema"],
        "source": _side("oracle", copies["schema"].upper(), "db1", "db1.hosp:1521/ebill"),
        "target": _side("postgresql", copies["schema"], "db2",
                        f"host=127.0.0.1 port={copies['port']} dbname={copies['tgt_name']}"),
        "cross_engine": {"work_dir": "/w", "ora2pg_conf": "/w/ora2pg.conf", "export": {"host": "db2", "argv": "ora2pg"},
                         "load": {"host": "db2", "argv": "ora2pg"}},
        "cutover_steps": [{"host": "app2", "argv": ["x"]}], "rollback_steps": [{"host": "app1", "argv": ["x"]}],
        "quality_suites": False, "verify_rows_batch": 700})
    real = db.side_reading

    @contextmanager
    def reading(cfg, side, *, snapshot=True):
        if side.engine == "oracle":
            with psycopg.connect(copies["ora"]) as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                o = OracleStandIn(conn, copies["schema"])
                yield o.fetch, o.stream
        else:
            with real(cfg, side, snapshot=snapshot) as got:
                yield got
    monkeypatch.setattr(db, "side_reading", reading)
    return SimpleNamespace(site=SimpleNamespace(site="demo"), cfg=cfg, files={}, facts={})


def verify_phase(m) -> PhaseRun:
    ph = PhaseRun("verify", "demo")
    verify.compare(m, ph)
    return ph


def test_the_same_bills_on_both_engines_are_equal_row_by_row(migration):
    ph = verify_phase(migration)
    bad = [(r.title, r.status.value, r.reason) for r in ph.results if r.status is not Status.OK]
    assert not bad, bad
    titles = {r.title.split("：", 1)[1]: r for r in ph.results}
    assert "跨引擎" in titles["对象清单一致"].reason and "不可比" in titles["库内内容指纹"].reason
    assert "所有字段的规范文本两边一致" in titles["票据抽样逐字段比对"].reason and "抽取 20 张" in titles["票据抽样逐字段比对"].reason
    assert "逐行一致" in titles["逐行比对"].reason
    assert ph.facts["rows_compared"] == ph.facts["rows"] > 1000 and ph.facts["rows_differing"] == 0
    assert ph.facts["across_engines"] == "oracle -> postgresql"


def test_one_changed_amount_on_the_target_is_named_by_its_key_and_its_field(migration, copies):
    s = sql.Identifier(copies["schema"])
    with psycopg.connect(copies["tgt"], autocommit=True) as conn:
        pk = [r[0] for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            [f"{copies['schema']}.t_ebill_main"])]
        first = conn.execute(sql.SQL("SELECT {} FROM {}.t_ebill_main ORDER BY id, ivc_datetime LIMIT 1").format(
            sql.SQL(", ").join(map(sql.Identifier, pk)), s)).fetchone()   # the sample's first bill
        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in pk)
        conn.execute(sql.SQL("UPDATE {}.t_ebill_main SET total_amt = total_amt + 0.01 WHERE ").format(s) + where, list(first))
    ph = verify_phase(migration)
    failed = {r.title.split("：", 1)[1]: r for r in ph.results if r.status is not Status.OK}
    assert set(failed) == {"票据抽样逐字段比对", "逐行比对：T_EBILL_MAIN", "逐行比对"}, failed
    label = key_label(first, [False] * len(first))
    assert f"内容不同 1 行（主键 {label}）" in failed["逐行比对：T_EBILL_MAIN"].reason
    assert "total_amt" in failed["票据抽样逐字段比对"].reason and "1/20" in failed["票据抽样逐字段比对"].reason
    assert ph.facts["rows_differing"] == 1
