"""A query blocked by another session's lock ends at the site's deadline as an ERROR that names the
relation, the deadline and the lock; the checks that do not need the locked table are unaffected.

The locks are taken on a database of our own on the sandbox's server (built like the demo's, see
sandbox/quality_db.py), never on the demo database other tests read at the same time.
"""
from __future__ import annotations

import os
import time
from datetime import date, timedelta

import psycopg
import pytest

from config.settings import Site, load_site
from sandbox import manager, postgres, quality_db
from sandbox.generator import local_now
from tasks.connect.database import connect
from tasks.connect.database.base import QueryDeadlineExceeded
from tasks.inspection.ebill import bill_stock, finance_backlog, interface_calls
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox
DEADLINE_S = 3
SLACK_S = 10  # connecting to a loaded 2-core sandbox, and Python's own start of the check
LOG_TABLE = "t_interface_log"  # the vendor table under the canonical view ebill_call_log
BILL_TABLE = "t_ebill_main"  # under ebill_invoice


@pytest.fixture(scope="module")
def locked_db(sandbox):
    """A small e-bill database of this module's own; its name, the server's state and credentials."""
    name = f"ebill_deadline_{os.getpid()}"
    creds = manager.credentials()
    state = sandbox["state"]["postgres"]
    quality_db.build(state, creds, name, seed=5, days=3, bills_per_day=10, now=local_now().replace(microsecond=0))
    try:
        yield {"name": name, "state": state, "creds": creds}
    finally:
        quality_db.drop(state, creds, name)


@pytest.fixture()
def site(sites_dir, locked_db) -> Site:
    demo = load_site("demo")
    database = demo.database.model_copy(update={
        "dsn": demo.database.dsn.replace("dbname=ebill", f"dbname={locked_db['name']}"),
        "statement_timeout_s": DEADLINE_S, "connect_timeout_s": 60})
    return demo.model_copy(update={"database": database})


class held_lock:
    """LOCK TABLE ... IN ACCESS EXCLUSIVE MODE in an open transaction, released on exit."""

    def __init__(self, locked_db: dict, table: str):
        self.conninfo = postgres.admin_conninfo(locked_db["state"], locked_db["creds"], locked_db["name"])
        self.table = table

    def __enter__(self):
        self.conn = psycopg.connect(self.conninfo)
        self.conn.execute(f"LOCK TABLE {postgres.VENDOR_SCHEMA}.{self.table} IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc):
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def timed(fn, *args):
    began = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - began


def test_a_locked_table_gives_error_at_the_deadline_and_other_checks_go_on(site, locked_db):
    with held_lock(locked_db, LOG_TABLE):
        [rec], seconds = timed(interface_calls.fn, site)
        backlog = finance_backlog.fn(site)
        stock = bill_stock.fn(site)
    print(f"interface_calls under a held lock: {rec.status.value} after {seconds:.1f} s (deadline {DEADLINE_S} s): {rec.reason}")
    assert rec.status == Status.ERROR and rec.check == "interface_calls" and rec.code == "query_timeout", rec
    assert "QueryDeadlineExceeded" in rec.reason and f"{DEADLINE_S} s" in rec.reason, rec.reason
    assert "ebill_call_log" in rec.reason and f"{postgres.VENDOR_SCHEMA}.{LOG_TABLE} (AccessExclusiveLock" in rec.reason
    assert "pg_locks" in rec.reason and "database.statement_timeout_s" in rec.reason
    assert seconds < DEADLINE_S + SLACK_S
    for r in backlog + stock:  # these read other tables: measured, whatever their verdict
        assert r.status != Status.ERROR, r.reason
    # released: the same check measures again
    assert all(r.status != Status.ERROR for r in interface_calls.fn(site))


def test_a_long_query_is_cut_at_the_statement_deadline(site):
    with connect(site.database) as db:
        began = time.monotonic()
        with pytest.raises(QueryDeadlineExceeded, match=r"did not finish within 3 s \(statement_timeout\)"):
            db.query("SELECT pg_sleep(30) FROM ebill_place")
        assert time.monotonic() - began < DEADLINE_S + SLACK_S
        assert db.query("SELECT COUNT(*) AS n FROM ebill_place")[0]["n"] > 0  # the session is still usable


def test_long_queries_still_wait_for_a_lock_only_until_the_site_deadline(site, locked_db):
    """The data-quality sessions may run long queries, but a lock wait is cut at the site's deadline."""
    db = connect(site.database)
    db.allow_long_queries(120)
    try:
        assert db.query("SELECT current_setting('statement_timeout') AS s")[0]["s"] == "2min"
        with held_lock(locked_db, BILL_TABLE):
            began = time.monotonic()
            with pytest.raises(QueryDeadlineExceeded, match=r"waited more than 3 s for a lock \(lock_timeout\)") as exc:
                db.query("SELECT COUNT(*) AS n FROM ebill_invoice")
            seconds = time.monotonic() - began
        assert f"{postgres.VENDOR_SCHEMA}.{BILL_TABLE}" in str(exc.value) and seconds < DEADLINE_S + SLACK_S
    finally:
        db.close()


def test_quality_rules_under_a_lock_end_at_the_deadline(site, locked_db, tmp_path):
    """The quality run's ERROR under a held lock reads like the database checks' (one line: the
    relation, the deadline, the lock's holder, the hint) and carries query_timeout, not Great
    Expectations' several-line "test query failed ... LockNotAvailable" text."""
    from tasks.quality.checks import validate_invoices

    today = date.today()
    with held_lock(locked_db, BILL_TABLE):
        began = time.monotonic()
        found = validate_invoices.fn(site.site, site.database, today - timedelta(days=1), today, local_now(),
                                     tmp_path, rules=["DQ01"])
        seconds = time.monotonic() - began
    errors = [r for r in found.results if r.status == Status.ERROR]
    print(f"one quality rule under a held lock: {seconds:.1f} s, {[(r.code, r.reason) for r in errors]}")
    assert errors and len(errors) == len(found.results), found.results
    for r in errors:
        assert r.code == "query_timeout", (r.code, r.reason)
        assert "\n" not in r.reason and "查询超时" in r.reason and "test query failed" not in r.reason, r.reason
        assert f"waited more than {DEADLINE_S} s for a lock (lock_timeout)" in r.reason, r.reason
        assert "ebill_canon.ebill_invoice" in r.reason, r.reason
        assert f"{postgres.VENDOR_SCHEMA}.{BILL_TABLE} (AccessExclusiveLock" in r.reason, r.reason
        assert "hint:" in r.reason and "database.statement_timeout_s" in r.reason, r.reason
    assert seconds < DEADLINE_S + 60  # GX's own start on a loaded machine, not the lock


def test_backup_verification_sessions_carry_their_deadlines(sites_dir, locked_db):
    """Generous per statement, short for a lock wait; a table locked by another session is named."""
    from tasks.backup.verify import pg_steps
    from tasks.backup.verify.pg_flow_steps import fetcher
    from tasks.backup.verify import reading as rd

    source = load_site("demo").backup_verification.source
    with pg_steps.connect(source) as conn:  # the shipped defaults
        assert [conn.execute(f"SHOW {s}").fetchone()[0] for s in ("statement_timeout", "lock_timeout")] == ["1h", "1min"]
    short = source.model_copy(update={"dsn": source.dsn.replace("dbname=ebill", f"dbname={locked_db['name']}"),
                                      "lock_timeout_s": DEADLINE_S})
    with held_lock(locked_db, BILL_TABLE), pg_steps.connect(short, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        began = time.monotonic()
        with pytest.raises(QueryDeadlineExceeded, match=r"waited more than 3 s for a lock") as exc:
            fetcher(conn)(rd.Statement(f"SELECT COUNT(*) AS n FROM {postgres.VENDOR_SCHEMA}.{BILL_TABLE}"))
        assert f"{postgres.VENDOR_SCHEMA}.{BILL_TABLE}" in str(exc.value) and time.monotonic() - began < DEADLINE_S + SLACK_S
        conn.rollback()


def test_a_database_that_is_down_is_an_error_with_a_hint_not_a_hang(sites_dir, unused_port, tmp_path):
    """The inspection's database checks and the quality run, pointed at a closed port."""
    from tasks.inspection.database import tablespace_usage
    from tasks.connect.ssh import HostPool
    from tasks.quality.checks import validate_invoices

    name = sites_dir("downdb", edit=lambda d: d["database"].update(
        dsn=f"host=127.0.0.1 port={unused_port} dbname=ebill", connect_timeout_s=3))
    down = load_site(name)
    began = time.monotonic()
    with HostPool() as pool:
        records = tablespace_usage.fn(down, pool) + interface_calls.fn(down)
    today = date.today()
    quality = validate_invoices.fn(down.site, down.database, today - timedelta(days=1), today, local_now(), tmp_path)
    records += quality.results
    seconds = time.monotonic() - began
    assert [r.status for r in records] == [Status.ERROR] * 3, records
    for r in records:
        assert str(unused_port) in r.reason and "hint:" in r.reason, r.reason
    assert seconds < 60, seconds  # each gives up at once (connection refused), not after a stall


def test_backup_verification_sessions_are_read_only_unless_they_write(sites_dir):
    """Reading sessions refuse a write; only the scratch server's (CREATE/DROP DATABASE) may write,
    and both carry the same deadlines (one builder: tasks.connect.database.postgresql.pg_session)."""
    from tasks.backup.verify import pg_steps

    cfg = load_site("demo").backup_verification
    with pg_steps.connect(cfg.source) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE ebops_verify_write_probe (a int)")
    with pg_steps.connect(cfg.scratch, read_only=False) as conn:
        shown = [conn.execute(f"SHOW {s}").fetchone()[0] for s in ("transaction_read_only", "statement_timeout")]
        assert shown == ["off", "1h"]
