"""tasks.connect.database without a server: the Oracle row mapping and session protocol, and the
PostgreSQL parameter rewriting.

Oracle cannot run here. FakeOracleConnection below STANDS IN FOR AN ORACLE CONNECTION: it records
the statements sent and answers with rows shaped as python-oracledb returns them from Oracle 19c
(upper-case column names in cursor.description, NUMBER as int/float/Decimal).
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from config.hosts import DatabaseConfig
from tasks.connect.database import connect
from tasks.connect.database.oracle import (
    READ_ONLY_SQL,
    TABLESPACE_USAGE_SQL,
    OracleEbillDatabase,
    tablespace_from_row,
)
from tasks.connect.database.params import to_pyformat
from tasks.connect.database.postgresql import PostgresEbillDatabase

# Recorded shape of TABLESPACE_USAGE_SQL on Oracle 19c (8 KiB blocks): SYSTEM autoextends to 32 GiB.
ORACLE_ROWS = [
    ("EBILL_DATA_2025", "PERMANENT", 8192, 3276800, 4194302, Decimal("78.1249627470970319")),
    ("SYSTEM", "PERMANENT", 8192, 117000, 4194302, Decimal("2.78949403786709")),
    ("TEMP", "TEMPORARY", 8192, 128, 4194302, Decimal("0.0030517578125")),
    ("UNDOTBS1", "UNDO", 8192, 2560, 4194302, Decimal("0.06103515625")),
]
ORACLE_COLUMNS = ["TABLESPACE_NAME", "CONTENTS", "BLOCK_SIZE", "USED_SPACE", "TABLESPACE_SIZE", "USED_PERCENT"]


class FakeOracleCursor:
    """Stands in for an oracledb cursor on a real Oracle server (no Oracle can run here)."""

    def __init__(self, conn):
        self.conn, self.description, self._rows = conn, None, []

    def execute(self, sql, params=None):
        self.conn.sent.append((" ".join(sql.split()), params))
        if "dba_tablespace_usage_metrics" in sql:
            self.description = [(c, None) for c in ORACLE_COLUMNS]
            self._rows = list(ORACLE_ROWS)
        elif "ebill_invoice" in sql:
            self.description = [("BILL_CODE", None), ("PAYER_NAME", None), ("TEL", None)]
            self._rows = [("44010125", "欧阳娜娜", "13812345678")]
        else:
            self.description, self._rows = None, []

    def fetchall(self):
        return self._rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeOracleConnection:
    """Stands in for an oracledb connection to Oracle: records statements and transaction ends."""

    def __init__(self):
        self.sent, self.rollbacks, self.closed = [], 0, False

    def cursor(self):
        return FakeOracleCursor(self)

    def rollback(self):
        self.rollbacks += 1

    def close(self):
        self.closed = True


def oracle_cfg():
    return DatabaseConfig.model_validate({"dialect": "oracle", "dsn": "db1.hospital.local:1521/EBILL",
                                          "user": "EBOPS_RO", "password": {"env": "UNUSED"}, "schema": "EBOPS"})


def test_tablespace_rows_become_autoextend_aware_usage():
    rows = [dict(zip([c.lower() for c in ORACLE_COLUMNS], r)) for r in ORACLE_ROWS]
    usage = [tablespace_from_row(r) for r in rows]
    data = usage[0]
    assert (data.name, data.kind, data.location) == ("EBILL_DATA_2025", "permanent", None)
    assert data.used_bytes == 3276800 * 8192 and data.max_bytes == 4194302 * 8192
    assert data.used_pct == 78.12
    assert [u.kind for u in usage] == ["permanent", "permanent", "temp", "undo"]


def test_every_oracle_query_runs_in_a_read_only_transaction():
    db = connect(oracle_cfg())
    assert isinstance(db, OracleEbillDatabase)
    fake = FakeOracleConnection()
    db._conn = fake  # the fake stands in for oracledb.connect(...)
    usage = db.tablespace_usage()
    rows = db.query("SELECT bill_code, payer_name, tel FROM ebill_invoice WHERE bill_code = :code", {"code": "44010125"})
    sent = [s for s, _ in fake.sent]
    assert sent[0] == READ_ONLY_SQL and sent[1] == " ".join(TABLESPACE_USAGE_SQL.split())
    assert sent[2] == READ_ONLY_SQL and fake.sent[3][1] == {"code": "44010125"}
    assert fake.rollbacks == 2  # each read-only transaction is ended
    assert len(usage) == 4 and usage[2].kind == "temp"
    assert rows == [{"bill_code": "44010125", "payer_name": "欧***", "tel": "138****5678"}]
    db.close()
    assert fake.closed and db._conn is None


def test_connect_picks_the_dialect_and_refuses_a_mismatch():
    assert isinstance(connect(DatabaseConfig.model_validate({
        "dialect": "postgresql", "dsn": "host=127.0.0.1 dbname=ebill", "user": "ebops_ro",
        "password": {"env": "UNUSED"}})), PostgresEbillDatabase)
    with pytest.raises(ValueError, match="dialect"):
        PostgresEbillDatabase(oracle_cfg())


def test_bad_oracle_schema_name_is_refused_before_connecting(monkeypatch):
    cfg = oracle_cfg().model_copy(update={"schema_name": "EBOPS; DROP USER X"})
    monkeypatch.setenv("UNUSED", "x")
    with pytest.raises(ValueError, match="database.schema"):
        OracleEbillDatabase(cfg)._connect()


@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM t WHERE a = :a AND b::int = :b", "SELECT * FROM t WHERE a = %(a)s AND b::int = %(b)s"),
    ("SELECT ':a' AS s, x LIKE '%z' FROM t WHERE c > :c", "SELECT ':a' AS s, x LIKE '%%z' FROM t WHERE c > %(c)s"),
    ('SELECT "odd:name" FROM t WHERE pct > 5 % 2', 'SELECT "odd:name" FROM t WHERE pct > 5 %% 2'),
])
def test_named_parameters_become_pyformat(sql, expected):
    assert to_pyformat(sql) == expected


# ---------------------------------------------------------------- the per-query deadline (issue 19.2)
class SlowOracleCursor(FakeOracleCursor):
    """Stands in for Oracle where a query on ebill_call_log outlasts the connection's call_timeout:
    python-oracledb thin mode then raises DPY-4024 (the message below is its wording)."""

    def execute(self, sql, params=None):
        if "ebill_call_log" in sql:
            import oracledb

            raise oracledb.DatabaseError(f"DPY-4024: call timeout of {self.conn.call_timeout} ms exceeded")
        super().execute(sql, params)


class SlowOracleConnection(FakeOracleConnection):
    call_timeout = 0  # python-oracledb's default: no limit

    def cursor(self):
        return SlowOracleCursor(self)


def test_oracle_sessions_carry_the_site_deadline_and_a_timeout_names_relation_and_deadline(monkeypatch):
    import oracledb

    from tasks.connect.database.base import QueryDeadlineExceeded

    fake = SlowOracleConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kw: fake)  # the fake stands in for the server
    monkeypatch.setenv("UNUSED", "x")
    cfg = oracle_cfg().model_copy(update={"statement_timeout_s": 7})
    db = connect(cfg)
    assert db.connection is fake and fake.call_timeout == 7000
    assert fake.sent[0][0] == "ALTER SESSION SET CURRENT_SCHEMA = EBOPS"
    with pytest.raises(QueryDeadlineExceeded) as exc:
        from datetime import datetime
        db.interface_stats(datetime(2026, 12, 1, 8), datetime(2026, 12, 1, 12))
    msg = str(exc.value)
    assert "ebill_call_log" in msg and "within 7 s" in msg and "V$SESSION.BLOCKING_SESSION" in msg
    assert "database.statement_timeout_s" in msg
    assert db.tablespace_usage()  # the session goes on with the next query
    db.allow_long_queries(900)
    assert db._conn is None and fake.closed  # reopened with the longer deadline on next use
    fake.closed = False
    assert db.connection is fake and fake.call_timeout == 900_000


def test_relations_read_by_a_query():
    from tasks.connect.database.deadline import relations_read

    assert relations_read("SELECT 1 FROM ebill_invoice i JOIN ebill_invoice_item d ON d.bill_id = i.bill_id "
                          "WHERE EXISTS (SELECT 1 FROM ebill_invoice x) AND y IN (SELECT z FROM dual)") == [
        "ebill_invoice", "ebill_invoice_item"]
    assert relations_read('SELECT COUNT(*) FROM "ebill"."t_ebill_main" AS OF SCN :scn') == ['"ebill"."t_ebill_main"']
    assert relations_read("SELECT current_setting('server_version') AS version") == []
    assert relations_read("SELECT EXTRACT(YEAR FROM i.issue_time), TRIM(BOTH FROM i.tel) FROM ebill_invoice i "
                          "JOIN ebill_place p ON p.place_code = i.place_code") == ["ebill_invoice", "ebill_place"]


def test_backup_verification_oracle_sessions_carry_a_call_timeout(monkeypatch):
    import oracledb

    from config.backup_verification import VerifyDatabase
    from tasks.backup.verify import oracle_tasks

    fake = SlowOracleConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kw: fake)  # the fake stands in for the server
    monkeypatch.setenv("UNUSED", "x")
    db = VerifyDatabase.model_validate({"dsn": "db1:1521/EBILL", "user": "EBOPS_VERIFY", "password": {"env": "UNUSED"},
                                        "statement_timeout_s": 1800})
    assert oracle_tasks.connect(db).call_timeout == 1_800_000


# ---------------------------------------------------------------- GX's sessions (issue 14.4)
class PoolFakeOracleConnection(FakeOracleConnection):
    """Stands in for an oracledb connection under SQLAlchemy's pool: commits counted, and the
    attribute the Oracle dialect sets on connecting (outputtypehandler) kept on the driver's object."""
    call_timeout = 0

    def __init__(self):
        super().__init__()
        self.commits = 0

    def commit(self):
        self.commits += 1


def test_gx_oracle_sessions_open_every_transaction_read_only(monkeypatch):
    import oracledb

    from tasks.quality.gx_run import _creator

    fake = PoolFakeOracleConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kw: fake)  # the fake stands in for the server
    monkeypatch.setenv("UNUSED", "x")
    opened: list = []
    conn = _creator(connect(oracle_cfg()), opened)()  # what GX's SQLAlchemy engine calls
    assert opened == [conn]
    sent = [s for s, _ in fake.sent]
    # the schema is set, then the first transaction is read-only before GX sends anything
    assert sent == ["ALTER SESSION SET CURRENT_SCHEMA = EBOPS", READ_ONLY_SQL]
    with conn.cursor() as cur:
        cur.execute("SELECT bill_code FROM ebill_invoice")
    conn.rollback()  # SQLAlchemy's pool ends each use with a rollback: the next transaction is read-only too
    conn.commit()
    assert [s for s, _ in fake.sent][2:] == ["SELECT bill_code FROM ebill_invoice", READ_ONLY_SQL, READ_ONLY_SQL]
    assert fake.rollbacks == 1 and fake.commits == 1
    conn.outputtypehandler = "handler"  # the dialect's settings reach the driver's connection
    assert fake.outputtypehandler == "handler" and conn.call_timeout == fake.call_timeout
    conn.close()
    assert fake.closed
