"""Oracle e-bill databases through python-oracledb in thin mode (no Instant Client on the worker)."""
from __future__ import annotations

import decimal
import re
from typing import Any, ClassVar, Iterator

from tasks.connect.database.base import (
    FINANCE_BACKLOG_SQL,  # noqa: F401 - the SQL this dialect runs, read by tests/unit/test_ebill_checks_sql.py
    INTERFACE_STATS_SQL,  # noqa: F401 - idem
    DatabaseError,
    EbillDatabase,
    QueryDeadlineExceeded,
    TablespaceUsage,
)
from tasks.connect.database.deadline import deadline_message, oracle_timed_out
from tasks.core.masking import mask_text

# Each session's transactions are read-only: SET TRANSACTION must open every transaction, so it is
# issued before each query and the transaction ended after it.
READ_ONLY_SQL = "SET TRANSACTION READ ONLY"

# DBA_TABLESPACE_USAGE_METRICS counts in blocks and is autoextend-aware: TABLESPACE_SIZE is the
# size the tablespace may grow to, USED_PERCENT is against that. Temp and undo are included.
TABLESPACE_USAGE_SQL = """
SELECT m.tablespace_name, t.contents, t.block_size, m.used_space, m.tablespace_size, m.used_percent
FROM dba_tablespace_usage_metrics m
JOIN dba_tablespaces t ON t.tablespace_name = m.tablespace_name
ORDER BY m.tablespace_name
"""

SERVER_VERSION_SQL = "SELECT version FROM v$instance"

# The stock query: the same meaning as tasks/connect/database/postgresql.py's, in Oracle's words (NUMBER(1)
# for the view's boolean ACTIVE, TO_NUMBER for the CHAR bill numbers). INTERFACE_STATS_SQL and
# FINANCE_BACKLOG_SQL read the same in both dialects (no AS before a table alias): they are
# base.py's, imported here so that each dialect's module names all three.
STOCK_LEVELS_SQL = """
WITH stock AS (
    SELECT place_code, bill_code,
           SUM(GREATEST(TO_NUMBER(end_no) - TO_NUMBER(current_no) + 1, 0)) AS remaining,
           MAX(warn_sheets) AS warn_sheets,
           COUNT(*) AS segments
    FROM ebill_stock
    WHERE status = 'ACTIVE'
    GROUP BY place_code, bill_code
), used AS (
    SELECT place_code, bill_code, COUNT(*) AS issued, MIN(issue_time) AS first_issue
    FROM ebill_invoice
    WHERE issue_time >= :since AND issue_time < :until
    GROUP BY place_code, bill_code
)
SELECT s.place_code, s.bill_code, s.remaining, s.warn_sheets, s.segments,
       NVL(u.issued, 0) AS issued, u.first_issue
FROM stock s
LEFT JOIN used u ON u.place_code = s.place_code AND u.bill_code = s.bill_code
WHERE NOT EXISTS (SELECT 1 FROM ebill_place p WHERE p.place_code = s.place_code AND p.active = 0)
UNION ALL
SELECT p.place_code, NULL, 0, NULL, 0,
       (SELECT NVL(SUM(u.issued), 0) FROM used u WHERE u.place_code = p.place_code),
       (SELECT MIN(u.first_issue) FROM used u WHERE u.place_code = p.place_code)
FROM ebill_place p
WHERE p.active = 1 AND NOT EXISTS (SELECT 1 FROM stock s WHERE s.place_code = p.place_code)
ORDER BY 1, 2
"""

_KIND = {"PERMANENT": "permanent", "TEMPORARY": "temp", "UNDO": "undo"}
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_$#]{0,127}$")


def tablespace_from_row(row: dict) -> TablespaceUsage:
    """One row of TABLESPACE_USAGE_SQL (lower-case keys) as a TablespaceUsage."""
    block = int(row["block_size"])
    return TablespaceUsage(
        name=row["tablespace_name"],
        kind=_KIND.get(str(row["contents"]).upper(), "permanent"),
        used_bytes=int(row["used_space"]) * block,
        max_bytes=int(row["tablespace_size"]) * block,
        location=None,
        used_pct=round(float(row["used_percent"]), 2),
    )


def _decimal_numbers(cursor: Any, metadata: Any) -> Any:
    # Amounts must stay exact (numeric(14,2)): NUMBER columns with a scale come back as Decimal,
    # like PostgreSQL's numeric does through psycopg.
    import oracledb

    if metadata.type_code is oracledb.DB_TYPE_NUMBER and (metadata.scale or 0) > 0:
        return cursor.var(decimal.Decimal, arraysize=cursor.arraysize)
    return None


def exact_values(cursor: Any, metadata: Any) -> Any:
    """The migration's row check (tasks/migration/canonical.py) needs every value exact and in
    hand: every NUMBER as Decimal (an unconstrained NUMBER would otherwise come back as a float),
    CLOB/NCLOB as str and BLOB as bytes (LONG / LONG RAW fetches, not LOB locators)."""
    import oracledb

    t = metadata.type_code
    if t is oracledb.DB_TYPE_NUMBER:
        return cursor.var(decimal.Decimal, arraysize=cursor.arraysize)
    if t is oracledb.DB_TYPE_CLOB:
        return cursor.var(oracledb.DB_TYPE_LONG, arraysize=cursor.arraysize)
    if t is oracledb.DB_TYPE_NCLOB:
        return cursor.var(oracledb.DB_TYPE_LONG_NVARCHAR, arraysize=cursor.arraysize)
    if t is oracledb.DB_TYPE_BLOB:
        return cursor.var(oracledb.DB_TYPE_LONG_RAW, arraysize=cursor.arraysize)
    return None


def oracle_session(dsn: str, user: str, password: str, *, connect_timeout_s: int, call_timeout_ms: int,
                   schema: str | None = None) -> Any:
    """The one way ebill-ops opens an Oracle session (checks, GX, the verification): thin mode,
    NUMBER with a scale as Decimal, and the deadline as call_timeout. Raises oracledb.Error: each
    caller names its own account in the hint. Oracle has no read-only session default: a read-only
    caller opens each transaction with READ_ONLY_SQL (EbillDatabase._fetch) or wraps the session in
    ReadOnlyTransactions (a pool's); schema must be a checked identifier (_IDENT)."""
    import oracledb  # thin mode: pure Python, no client libraries

    conn = oracledb.connect(user=user, password=password, dsn=dsn, tcp_connect_timeout=float(connect_timeout_s))
    conn.outputtypehandler = _decimal_numbers  # amounts and sampled values stay exact
    conn.call_timeout = call_timeout_ms  # per round trip: no query may stall the run
    if schema:
        with conn.cursor() as cur:
            cur.execute(f"ALTER SESSION SET CURRENT_SCHEMA = {schema}")
    return conn


def oracle_fetch(conn: Any, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
    """The one Oracle row fetcher (checks and verification): lower-case column names and the rows.
    Transactions are the caller's (the checks wrap each query in SET TRANSACTION READ ONLY)."""
    with conn.cursor() as cur:
        cur.execute(sql, params or {})
        if cur.description is None:
            return [], []
        return [d[0].lower() for d in cur.description], cur.fetchall()


def oracle_stream(conn: Any, sql: str, params: dict | None, batch: int) -> Iterator[tuple]:
    """Rows of one query, `batch` per round trip, never all in memory (the row check reads whole
    tables), with exact values (exact_values)."""
    with conn.cursor() as cur:
        cur.arraysize = cur.prefetchrows = batch
        cur.outputtypehandler = exact_values
        cur.execute(sql, params or {})
        while rows := cur.fetchmany(batch):
            yield from rows


class ReadOnlyTransactions:
    """An oracledb connection on which every transaction is read-only, for a pool that runs its
    own statements (SQLAlchemy under GX). Oracle has no read-only session default: SET TRANSACTION
    READ ONLY holds until the transaction ends, so it is issued on connecting and again after every
    commit or rollback (SQLAlchemy rolls back each time a connection returns to its pool)."""

    def __init__(self, conn: Any):
        object.__setattr__(self, "_conn", conn)
        self._begin_read_only()

    def _begin_read_only(self) -> None:
        with self._conn.cursor() as cur:
            cur.execute(READ_ONLY_SQL)

    def rollback(self) -> None:
        self._conn.rollback()
        self._begin_read_only()

    def commit(self) -> None:
        self._conn.commit()  # nothing was written: the transaction was read-only
        self._begin_read_only()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)  # the dialect sets outputtypehandler etc. on the driver's object


class OracleEbillDatabase(EbillDatabase):
    dialect: ClassVar[str] = "oracle"
    stock_levels_sql: ClassVar[str] = STOCK_LEVELS_SQL

    def _connect(self) -> Any:
        import oracledb  # thin mode: pure Python, no client libraries

        schema = self.cfg.schema_name
        if schema and not _IDENT.match(schema):
            raise ValueError(f"database.schema {schema!r} is not an Oracle identifier (hint: EBOPS)")
        try:
            return oracle_session(self.cfg.dsn, self.cfg.user, self._password(),
                                  connect_timeout_s=self.cfg.connect_timeout_s,
                                  call_timeout_ms=self.deadline.oracle_call_timeout_ms, schema=schema)
        except oracledb.Error as exc:
            raise DatabaseError(
                f"cannot connect to Oracle ({self.cfg.dsn}) as {self.cfg.user}: {mask_text(str(exc)).strip()} "
                f"(hint: dsn is host:port/service_name; the account is created by config/sql/oracle/02_readonly_account.sql)"
            ) from None

    def engine_session(self) -> Any:
        # _fetch opens each of its own transactions read-only; a pool's transactions need the wrapper
        return ReadOnlyTransactions(self._connect())

    def _fetch(self, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
        import oracledb

        conn = self.connection
        try:
            with conn.cursor() as cur:
                cur.execute(READ_ONLY_SQL)
            return oracle_fetch(conn, sql, params)
        except oracledb.Error as exc:
            if oracle_timed_out(exc):
                raise QueryDeadlineExceeded(deadline_message(sql, self.deadline, "statement", dialect="oracle")) from None
            raise DatabaseError(f"query failed on {self.cfg.dsn}: {mask_text(str(exc)).strip()}") from None
        finally:
            try:
                conn.rollback()  # ends the read-only transaction
            except Exception:  # noqa: BLE001 - the query's own error matters more
                pass

    def tablespace_usage(self) -> list[TablespaceUsage]:
        return [tablespace_from_row(r) for r in self.query(TABLESPACE_USAGE_SQL)]

    def server_version(self) -> str:
        return "Oracle " + str(self.query(SERVER_VERSION_SQL)[0]["version"])
