"""The contract the year-end's catalogue reading and proof keep on every backend, read-only: the
catalogue finds year-partitioned tables, the plan's statements have their dialect's shape, and
measuring a partition twice gives the same rows and fingerprint (what the compaction's proof relies
on). PostgreSQL: the session sandbox (read-only session, nothing changed); Oracle: live when these
are set (otherwise its case is reported SKIPPED, not passed):

  ORACLE_DSN=host:port/service ORACLE_USER=EBOPS_DBA ORACLE_PASSWORD=... ORACLE_SCHEMA=EBILL \\
      .venv/bin/python -m pytest tests/integration/test_yearend_contract.py
"""
from __future__ import annotations

import os
from datetime import date

import pytest

from config.year_end import YearEndDatabase

pytestmark = pytest.mark.sandbox


def _cfg(dsn: str, user: str, env: str, schema: str, pattern: str) -> YearEndDatabase:
    return YearEndDatabase.model_validate({
        "schema": schema, "dba": {"dsn": dsn, "user": user, "password": {"env": env}},
        "tablespace": {"name_pattern": pattern, "location": "{tablespace_dir}/" + pattern.lower() + ".dbf"},
        "archive": {"tablespace": "ts_ebill_archive", "location": "{tablespace_dir}/ts_ebill_archive"}})


def test_postgresql_contract(sandbox):
    from tasks.yearend.pg_runner import dba_session, measure_partition, read_catalogue
    from tasks.yearend.database import pg_plan

    state = sandbox["state"]["postgres"]
    cfg = _cfg(f"host=127.0.0.1 port={state['pg_port']} dbname=ebill", "postgres", "EBOPS_DEMO_DB_ADMIN_PASSWORD",
               "ebill", "ts_ebill_{year}")
    with dba_session(cfg, read_only=True) as conn:
        cat = read_catalogue(conn, "ebill")
        assert {t.name for t in cat.tables} >= {"t_ebill_main", "t_ebill_detail"}
        nxt = date.today().year + 1
        steps, facts = pg_plan(cat, cfg, nxt, date.today(), None)
        missing = [t.name for t in cat.tables for y in (nxt, nxt + 1) if t.year(y) is None]
        assert all(any(s.id.startswith("partition:") and t in s.id for s in steps) for t in missing)
        newest = cat.tables[0].year(date.today().year)  # this year's: it holds bills
        a = measure_partition(conn, "ebill", cat.tables[0].name, newest.name)
        b = measure_partition(conn, "ebill", cat.tables[0].name, newest.name, {"method": a["method"], "key_shift": a["key_shift"]})
        assert a["rows"] > 0 and (a["rows"], a["fingerprint"]) == (b["rows"], b["fingerprint"])
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"


def test_oracle_contract():
    if not os.environ.get("ORACLE_DSN"):
        pytest.skip("Oracle contract: set ORACLE_DSN, ORACLE_USER, ORACLE_PASSWORD, ORACLE_SCHEMA to run it live")
    from tasks.connect.database.oracle import READ_ONLY_SQL
    from tasks.yearend.oracle import oracle_plan
    from tasks.yearend.oracle_runner import measure_partition, oracle_session, read_catalogue

    schema = os.environ.get("ORACLE_SCHEMA", "EBILL").upper()
    cfg = _cfg(os.environ["ORACLE_DSN"], os.environ.get("ORACLE_USER", "EBOPS_DBA"), "ORACLE_PASSWORD", schema,
               "TS_EBILL_{year}")
    conn = oracle_session(cfg.dba.dsn, cfg.dba.user, os.environ["ORACLE_PASSWORD"], connect_timeout_s=30,
                          call_timeout_ms=600_000)
    try:
        with conn.cursor() as cur:
            cur.execute(READ_ONLY_SQL)
        cat = read_catalogue(conn, schema, "basic")
        assert cat.tables, f"no year-partitioned table in {schema}: {cat.others}"
        steps, _ = oracle_plan(cat, cfg, date.today().year + 1, date.today())
        assert all(s.text.startswith(("CREATE TABLESPACE", "ALTER TABLE", "ALTER TABLESPACE")) for s in steps)
        t = cat.tables[0]
        p = max((p for p in t.partitions if p.year), key=lambda p: p.year or 0)
        a = measure_partition(conn, schema, t.name, p.name)
        b = measure_partition(conn, schema, t.name, p.name, {"method": a["method"], "key_shift": a["key_shift"]})
        assert (a["rows"], a["fingerprint"]) == (b["rows"], b["fingerprint"])
    finally:
        conn.rollback()
        conn.close()
