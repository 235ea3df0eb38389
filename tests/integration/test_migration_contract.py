"""The contract the server migration's database statements keep, executed and their results'
shapes asserted: the preflight's, the freeze's and the cut-over's statements (tasks/migration/db.py
SQL), on Oracle also the after-restore checks (oracle.AFTER_RESTORE_SQL), the auxiliary instance's
query, the row check's stream (rowcheck over the vendor's schema, python-oracledb through
oracle_stream and its exact_values handler) and the DQ01-DQ22 suites on the canonical views.

PostgreSQL: the session sandbox, read-only (the verification account in a read-only transaction).
Oracle: live when these are set, otherwise its cases are reported SKIPPED, never as passed (no
Oracle server can run on our machines):

  ORACLE_DSN=host:port/service ORACLE_USER=EBOPS_VERIFY ORACLE_PASSWORD=... ORACLE_SCHEMA=EBILL \\
      ORACLE_CANON_SCHEMA=EBOPS .venv/bin/python -m pytest tests/integration/test_migration_contract.py

The account is config/sql/oracle/03_verify_account.sql's (it grants the dictionary views read here);
ORACLE_SCHEMA the vendor's schema, ORACLE_CANON_SCHEMA the canonical views' owner
(01_canonical_views.sql, default EBOPS); ORACLE_ROWCHECK_MAX_ROWS (default 200000) leaves larger
tables out of the row check. Everything here only reads.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from config.backup_verification import VerifyDatabase
from tasks.backup.verify.reading import Statement
from tasks.migration import db

pytestmark = pytest.mark.sandbox
SKIP = "Oracle contract: set ORACLE_DSN, ORACLE_USER, ORACLE_PASSWORD, ORACLE_SCHEMA to run it live"


def _oracle_db() -> VerifyDatabase:
    return VerifyDatabase(dsn=os.environ["ORACLE_DSN"], user=os.environ.get("ORACLE_USER", "EBOPS_VERIFY"),
                          password={"env": "ORACLE_PASSWORD"})


@contextmanager
def _reading(dialect: str, database: VerifyDatabase):
    """The migration's own session of one side (db.side_reading: the code under contract)."""
    with db.side_reading(SimpleNamespace(dialect=dialect), SimpleNamespace(database=database, engine=dialect)) as (fetch, stream):
        if dialect == "oracle":  # one snapshot for everything the test reads (the other side is the same session)
            fetch(Statement("SET TRANSACTION READ ONLY"))
        yield fetch, stream


@pytest.fixture(params=["postgresql", "oracle"])
def side(request):
    """(dialect, vendor schema, fetch, stream) of one read-only session."""
    if request.param == "oracle":
        if not os.environ.get("ORACLE_DSN"):
            pytest.skip(SKIP)
        with _reading("oracle", _oracle_db()) as (fetch, stream):
            yield "oracle", os.environ.get("ORACLE_SCHEMA", "EBILL").upper(), fetch, stream
        return
    from sandbox import manager

    sandbox = request.getfixturevalue("sandbox")
    manager.export_credentials()
    port = sandbox["state"]["postgres"]["pg_port"]
    database = VerifyDatabase(dsn=f"host=127.0.0.1 port={port} dbname=ebill", user="ebops_verify",
                              password={"env": "EBOPS_DEMO_DB_VERIFY_PASSWORD"}, connect_timeout_s=120)
    with _reading("postgresql", database) as (fetch, stream):
        yield "postgresql", "ebill", fetch, stream


def _digits(v) -> bool:
    return str(v).strip().isdigit()


def test_every_preflight_freeze_and_cutover_statement_runs_with_its_shape(side):
    dialect, schema, fetch, _ = side
    binds = {"test_bills": {"code": "EBOPS-NONE", "no": "0", "red_code": "EBOPS-NONE", "red_no": "0"},
             "user_exists": {"username": "SYS"}}
    rows = {name: fetch(db.statement(dialect, name, schema, binds.get(name))) for name in db.SQL[dialect]}
    v = rows.pop("version")[0]
    assert str(v["version"]).strip() and str(v["num"])[:1].isdigit(), v
    size = int(rows.pop("size")[0]["bytes"] or 0)
    assert size > 0
    assert int(rows.pop("user_tables")[0]["n"]) > 0
    every = {r["name"] for r in rows.pop("all_tablespaces")}
    used = {r["name"] for r in rows.pop("tablespaces")}
    assert every and used <= every, (used, every)
    newest = rows.pop("newest_bill")[0]
    assert isinstance(newest["newest"], datetime) and int(newest["bills"]) > 0
    assert _digits(rows.pop("identity")[0]["ident"])
    assert rows.pop("test_bills") == []     # no such bill: the statement and its four binds run
    if dialect == "oracle":
        assert int(rows.pop("database_size")[0]["bytes"]) >= size    # every datafile holds the schema's segments
        assert int(rows.pop("user_exists")[0]["n"]) == 1               # SYS: always there
    assert rows == {}, f"a statement without a contract: {sorted(rows)}"


@pytest.mark.oracle_live
def test_oracle_after_restore_checks_and_the_instance_query():
    if not os.environ.get("ORACLE_DSN"):
        pytest.skip(SKIP)
    from tasks.migration import after_restore, oracle

    schema = os.environ.get("ORACLE_SCHEMA", "EBILL").upper()
    with _reading("oracle", _oracle_db()) as (fetch, _):
        name, mode = after_restore.open_mode(fetch)
        invalid = after_restore.invalid_objects(fetch, schema)
        inst = fetch(Statement(oracle.AUXILIARY_INSTANCE_SQL))
    assert name and mode in ("READ WRITE", "READ ONLY", "READ ONLY WITH APPLY", "MOUNTED"), (name, mode)
    assert (after_restore.judge_open_mode(name, mode)[0].value == "OK") == (mode == "READ WRITE")
    assert all(len(o.split(" ")) >= 2 for o in invalid), invalid      # "TYPE NAME"
    status, version = inst[0]["instance"].split("|", 1)
    assert status in ("OPEN", "MOUNTED", "STARTED") and version[:1].isdigit()


@pytest.mark.oracle_live
def test_oracle_row_check_reads_every_table_of_the_vendor_schema_exactly():
    """The row check's Oracle side against itself in one read-only snapshot: every table with a
    primary key compared, all equal; the values arrive exact (Decimal, never float)."""
    if not os.environ.get("ORACLE_DSN"):
        pytest.skip(SKIP)
    from tasks.backup.verify.fingerprint_names import quote
    from tasks.migration.rowcheck import Side, compare_schema, read_shapes, rows_statement

    schema = os.environ.get("ORACLE_SCHEMA", "EBILL").upper()
    max_rows = int(os.environ.get("ORACLE_ROWCHECK_MAX_ROWS", "200000"))
    with _reading("oracle", _oracle_db()) as (fetch, stream):
        one = Side("oracle", schema, fetch, stream)
        shapes = read_shapes(one)
        assert "t_ebill_main" in shapes, sorted(shapes)
        counts = {s.name: int(fetch(Statement(f"SELECT COUNT(*) AS n FROM {quote('oracle', schema)}."
                                              f"{quote('oracle', s.name)}"))[0]["n"]) for s in shapes.values()}
        tables = compare_schema(one, one, max_rows=max_rows, counts=counts, batch=1000)
        bill = shapes["t_ebill_main"]
        first = []
        for row in stream(rows_statement("oracle", schema, bill, [c.name for c in bill.columns]), 50):
            first.append(row)
            if len(first) == 50:
                break
    assert not [t for t in tables if t.error], [(t.table, t.error) for t in tables if t.error]
    compared = [t for t in tables if not t.not_compared]
    assert compared and all(t.differences == 0 and t.source_rows == t.target_rows == counts[t.table] for t in compared)
    assert first and not [v for r in first for v in r if isinstance(v, float)]
    assert any(isinstance(v, Decimal) for r in first for v in r)


@pytest.mark.oracle_live
def test_oracle_dq_suites_run_on_the_canonical_views():
    """What the verify phase runs on an Oracle target: every rule runs (what it finds is data)."""
    if not os.environ.get("ORACLE_DSN"):
        pytest.skip(SKIP)
    from config.hosts import DatabaseConfig
    from tasks.connect.database import connect
    from tasks.quality.gx_run import run_suites
    from tasks.quality.records import summarise

    canon = os.environ.get("ORACLE_CANON_SCHEMA", "EBOPS").upper()
    cfg = DatabaseConfig(dialect="oracle", dsn=os.environ["ORACLE_DSN"], user=os.environ.get("ORACLE_USER", "EBOPS_VERIFY"),
                         password={"env": "ORACLE_PASSWORD"}, schema=canon, connect_timeout_s=30)
    now = datetime.now().replace(microsecond=0)
    conn = connect(cfg)
    try:
        summaries = summarise(run_suites(conn, canon, (now - timedelta(days=7)).date(), now.date(), now))
    finally:
        conn.close()
    assert len(summaries) >= 22 and not [(s.rule_id, s.errors) for s in summaries if s.errors]
