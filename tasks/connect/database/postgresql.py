"""PostgreSQL-family e-bill databases (PostgreSQL, openGauss, KingbaseES) through psycopg 3."""
from __future__ import annotations

from typing import Any, ClassVar, Iterator

import psycopg

from tasks.connect.database.base import (
    FINANCE_BACKLOG_SQL,  # noqa: F401 - the SQL this dialect runs, read by tests/unit/test_ebill_checks_sql.py
    INTERFACE_STATS_SQL,  # noqa: F401 - idem
    DatabaseError,
    EbillDatabase,
    QueryDeadlineExceeded,
    TablespaceUsage,
)
from tasks.connect.database.deadline import (
    Deadline,
    DeadlineConnection,
    deadline_message,
    pg_blocking_locks,
    pg_connect,
    pg_timed_out,
)
from tasks.connect.database.params import to_pyformat
from tasks.core.masking import mask_text

# pg_default and pg_global have no location of their own: they live in the data directory.
# pg_tablespace_size and current_setting('data_directory') are allowed through pg_monitor.
TABLESPACE_USAGE_SQL = """
SELECT spcname AS name,
       pg_tablespace_size(oid) AS used_bytes,
       COALESCE(NULLIF(pg_tablespace_location(oid), ''), current_setting('data_directory')) AS location
FROM pg_tablespace
ORDER BY spcname
"""

SERVER_VERSION_SQL = "SELECT current_setting('server_version') AS version"

# INTERFACE_STATS_SQL and FINANCE_BACKLOG_SQL read the same in every dialect: they are base.py's,
# imported here so that each dialect's module names all three of the checks' queries.

# Remaining numbers per (issuing point, bill code) over its ACTIVE segments (a segment whose
# current_no ran past end_no + 1 counts 0, not negative), the point's warning level (the highest
# of its segments'), and the bills issued from that code there since :since. Active points
# without any ACTIVE segment come as rows with a NULL bill_code; inactive (停用) points are left out.
STOCK_LEVELS_SQL = """
WITH stock AS (
    SELECT place_code, bill_code,
           SUM(GREATEST(CAST(end_no AS bigint) - CAST(current_no AS bigint) + 1, 0)) AS remaining,
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
       COALESCE(u.issued, 0) AS issued, u.first_issue
FROM stock s
LEFT JOIN used u ON u.place_code = s.place_code AND u.bill_code = s.bill_code
WHERE NOT EXISTS (SELECT 1 FROM ebill_place p WHERE p.place_code = s.place_code AND NOT p.active)
UNION ALL
SELECT p.place_code, NULL, 0, NULL, 0,
       (SELECT COALESCE(SUM(u.issued), 0) FROM used u WHERE u.place_code = p.place_code),
       (SELECT MIN(u.first_issue) FROM used u WHERE u.place_code = p.place_code)
FROM ebill_place p
WHERE p.active AND NOT EXISTS (SELECT 1 FROM stock s WHERE s.place_code = p.place_code)
ORDER BY 1, 2
"""


def pg_session(dsn: str, user: str, password: str, deadline: Deadline, *, connect_timeout_s: int,
               read_only: bool = True, schema: str | None = None, dbname: str | None = None,
               autocommit: bool = True, application_name: str = "ebill-ops") -> DeadlineConnection:
    """The one way ebill-ops opens a PostgreSQL-family session (checks, GX, the verification): the
    deadline in the startup options and, unless the caller must write, read-only as the session's
    default, so that every transaction on it is read-only whoever opens it. Raises psycopg.Error:
    each caller names its own account in the hint."""
    options = "-c default_transaction_read_only=on" if read_only else ""
    if schema:
        options += f" -c search_path={schema}"  # lets checks name the canonical views without a schema
    kwargs: dict[str, Any] = {"dbname": dbname} if dbname else {}
    return pg_connect(dsn, deadline, user=user, password=password, connect_timeout=connect_timeout_s,
                      options=options.strip(), application_name=application_name, autocommit=autocommit, **kwargs)


def pg_fetch(conn: Any, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
    """The one PostgreSQL row fetcher (checks and verification): lower-case column names and the
    rows. `:name` parameters (params.py); errors are the caller's to explain."""
    with conn.cursor() as cur:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(to_pyformat(sql), params)
        if cur.description is None:
            return [], []
        return [d.name.lower() for d in cur.description], cur.fetchall()


def pg_stream(conn: Any, sql: str, params: dict | None, batch: int) -> Iterator[tuple]:
    """Rows of one query through a server-side cursor, `batch` per round trip, never all in memory
    (the row check reads whole tables). Needs an open transaction (not autocommit)."""
    with conn.cursor(name="ebops_rows") as cur:
        cur.itersize = batch
        cur.execute(to_pyformat(sql), params or {})
        while rows := cur.fetchmany(batch):
            yield from rows


class PostgresEbillDatabase(EbillDatabase):
    dialect: ClassVar[str] = "postgresql"
    stock_levels_sql: ClassVar[str] = STOCK_LEVELS_SQL

    def _connect(self) -> Any:
        try:
            # autocommit: every statement is its own (read-only) transaction, so a check never
            # leaves an idle transaction holding back vacuum on the hospital's database
            return pg_session(self.cfg.dsn, self.cfg.user, self._password(), self.deadline,
                              connect_timeout_s=self.cfg.connect_timeout_s, schema=self.cfg.schema_name)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL ({self.cfg.dsn}) as {self.cfg.user}: {mask_text(str(exc)).strip()} "
                f"(hint: check database.dsn, the account of config/sql/postgresql/02_readonly_account.sql and its password variable)"
            ) from None

    def _fetch(self, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
        try:
            return pg_fetch(self.connection, sql, params)
        except psycopg.Error as exc:
            kind = pg_timed_out(exc)
            if kind:
                locks = pg_blocking_locks(self.connection)
                raise QueryDeadlineExceeded(deadline_message(sql, self.deadline, kind, locks)) from None
            raise DatabaseError(f"query failed on {self.cfg.dsn}: {mask_text(str(exc)).strip()}") from None

    def tablespace_usage(self) -> list[TablespaceUsage]:
        # The database cannot tell how far a tablespace may grow: that is its filesystem's free
        # space, which the caller measures over SSH (df) and judges used_pct against.
        out = []
        for r in self.query(TABLESPACE_USAGE_SQL):
            if r["used_bytes"] is None:  # the server could not read the tablespace's directory
                raise DatabaseError(f"tablespace {r['name']}: size unreadable at {r['location']} "
                                    f"(hint: check that directory's owner and permissions on the database host)")
            out.append(TablespaceUsage(name=r["name"], kind="permanent", used_bytes=int(r["used_bytes"]),
                                       max_bytes=None, location=r["location"], used_pct=None))
        return out

    def server_version(self) -> str:
        return "PostgreSQL " + self.query(SERVER_VERSION_SQL)[0]["version"]
