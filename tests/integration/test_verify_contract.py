"""The contract every backup-verification backend keeps, run against each database family's real
server: the sandbox's PostgreSQL always; Oracle when ORACLE_DSN is set (no Oracle server can run on
our machines, so in CI the Oracle cases are reported SKIPPED, never as passed).

  ORACLE_DSN=host:port/service ORACLE_USER=EBOPS_VERIFY ORACLE_PASSWORD=... ORACLE_SCHEMA=EBILL \\
      .venv/bin/python -m pytest tests/integration/test_verify_contract.py

The Oracle account is config/sql/oracle/03_verify_account.sql's; the password is read from the
environment variable ORACLE_PASSWORD by reference, as a site file would. Everything here only reads.

A "point" is what a verification compares at: PostgreSQL, one REPEATABLE READ transaction (the
exported snapshot's kind); Oracle, AS OF the SCN current when the test starts.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace

import pytest

from config.backup_verification import VerifyDatabase
from tasks.backup.verify import measure
from tasks.backup.verify.fingerprint_names import quote
from tasks.backup.verify import reading as rd
from tasks.backup.verify.fingerprint_compare import (
    compare_fingerprints,
    compare_inventories,
    compare_row_counts,
)
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox
CHUNK = 500


@contextmanager
def _pg_point(sandbox):
    from sandbox import manager
    from tasks.backup.verify import pg_steps
    from tasks.backup.verify.pg_flow_steps import fetcher

    manager.export_credentials()
    port = sandbox["state"]["postgres"]["pg_port"]
    db = VerifyDatabase(dsn=f"host=127.0.0.1 port={port} dbname=ebill", user="ebops_verify",
                        password={"env": "EBOPS_DEMO_DB_VERIFY_PASSWORD"}, connect_timeout_s=120)
    with pg_steps.connect(db, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield fetcher(conn), "ebill", None
        finally:
            conn.rollback()


def _oracle_db() -> VerifyDatabase:
    return VerifyDatabase(dsn=os.environ["ORACLE_DSN"], user=os.environ.get("ORACLE_USER", "EBOPS_VERIFY"),
                          password={"env": "ORACLE_PASSWORD"})


@contextmanager
def _oracle_point(scn: int):
    from tasks.backup.verify import oracle_tasks

    with oracle_tasks.connect(_oracle_db()) as conn:
        yield oracle_tasks.fetcher(conn), os.environ.get("ORACLE_SCHEMA", "EBILL").upper(), rd.AsOf(scn=scn)


@pytest.fixture(params=["postgresql", "oracle"])
def point(request):
    """(dialect, a factory of points): each call opens a new session at the same point."""
    if request.param == "oracle":
        if not os.environ.get("ORACLE_DSN"):
            pytest.skip("Oracle contract: set ORACLE_DSN, ORACLE_USER, ORACLE_PASSWORD, ORACLE_SCHEMA to run it live")
        from tasks.backup.verify import oracle_steps, oracle_tasks

        with oracle_tasks.connect(_oracle_db()) as conn:
            scn = oracle_steps.scn_from_rows(oracle_tasks.fetcher(conn)(rd.Statement(rd.ORACLE_CURRENT_SCN_SQL)))
        return "oracle", lambda: _oracle_point(scn)
    sandbox = request.getfixturevalue("sandbox")
    return "postgresql", lambda: _pg_point(sandbox)


def _bill_table(dialect: str) -> str:
    return measure.catalog_name(dialect, measure.BILL_TABLE)


def _measure(fetch, dialect, schema, as_of, **kw) -> measure.Measurement:
    return measure.measure(fetch, dialect, schema, as_of=as_of, chunk_rows=CHUNK, **kw)


def test_measuring_twice_at_one_point_is_equal(point):
    dialect, at = point
    with at() as (fetch, schema, as_of):
        first = _measure(fetch, dialect, schema, as_of)
    with at() as (fetch, schema, as_of):
        second = _measure(fetch, dialect, schema, as_of)
    recs = (compare_inventories("contract", first.inventory, second.inventory)
            + compare_row_counts("contract", first.counts, second.counts, as_of=as_of)
            + compare_fingerprints("contract", first.prints, second.prints, as_of=as_of))
    assert recs and all(r.status is Status.OK for r in recs), [r.reason for r in recs if r.status is not Status.OK]
    bill = _bill_table(dialect)
    assert first.counts[bill] > 0 and first.newest_bill is not None
    assert any(o.kind == "table" and o.name == bill for o in first.inventory)
    assert first.prints[bill].rows == first.counts[bill]


def test_counts_agree_with_a_plain_count(point):
    dialect, at = point
    with at() as (fetch, schema, as_of):
        m = _measure(fetch, dialect, schema, as_of)
        params: dict = {}
        table = f"{quote(dialect, schema)}.{quote(dialect, _bill_table(dialect))}{measure._as_of_scn(as_of, params)}"
        plain = fetch(rd.Statement(f"SELECT COUNT(*) AS n FROM {table}", params))[0]["n"]
    assert m.counts[_bill_table(dialect)] == int(plain)


def test_the_sample_is_deterministic_and_rereads_equal(point):
    dialect, at = point
    with at() as (fetch, schema, as_of):
        first = measure.sample_bills(fetch, dialect, schema, 5, as_of)
        again = measure.sample_bills(fetch, dialect, schema, 5, as_of)
        keys = [{"id": k[0], measure.BILL_TIME: k[1]} for k in first]
        reread = measure.sample_bills(fetch, dialect, schema, 0, as_of, keys=keys)
    assert 0 < len(first) <= 5 and list(first) == list(again)
    assert all(row is not None for row in first.values())
    assert all(measure.compare_bill(first[k], reread[k]) == [] for k in first)


def test_a_cutoff_counts_only_rows_issued_before_it(point):
    dialect, at = point
    with at() as (fetch, schema, as_of):
        whole = _measure(fetch, dialect, schema, as_of)
        before = whole.newest_bill  # the newest bill itself is not before its own time
        cut = replace(as_of or rd.AsOf(), before=before,
                      cutoff_columns={measure.BILL_TABLE: measure.catalog_name(dialect, measure.BILL_TIME)})
        part = _measure(fetch, dialect, schema, cut)
        params = {"before": before}
        table = f"{quote(dialect, schema)}.{quote(dialect, _bill_table(dialect))}{measure._as_of_scn(as_of, params)}"
        older = fetch(rd.Statement(f"SELECT COUNT(*) AS n FROM {table} WHERE {measure.BILL_TIME} < :before", params))
    bill = _bill_table(dialect)
    assert part.counts[bill] == int(older[0]["n"]) < whole.counts[bill]
    assert part.prints[bill].total != whole.prints[bill].total


def test_mutable_columns_are_left_out_of_the_fingerprint(point):
    dialect, at = point
    with at() as (fetch, schema, as_of):
        m = _measure(fetch, dialect, schema, as_of, mutable_columns={measure.BILL_TABLE: ["notice_flag"]})
    hashed = [c.lower() for c in m.prints[_bill_table(dialect)].columns]
    assert "notice_flag" not in hashed and "ivc_datetime" in hashed
