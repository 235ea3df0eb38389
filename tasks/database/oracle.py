"""Oracle e-bill databases through python-oracledb in thin mode (no Instant Client on the worker)."""
from __future__ import annotations

import decimal
import re
from typing import Any, ClassVar

from tasks.database.base import DatabaseError, EbillDatabase, TablespaceUsage
from tasks.masking import mask_text

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


class OracleEbillDatabase(EbillDatabase):
    dialect: ClassVar[str] = "oracle"

    def _connect(self) -> Any:
        import oracledb  # thin mode: pure Python, no client libraries

        schema = self.cfg.schema_name
        if schema and not _IDENT.match(schema):
            raise ValueError(f"database.schema {schema!r} is not an Oracle identifier (hint: EBOPS)")
        try:
            conn = oracledb.connect(user=self.cfg.user, password=self._password(), dsn=self.cfg.dsn,
                                    tcp_connect_timeout=float(self.cfg.connect_timeout_s))
        except oracledb.Error as exc:
            raise DatabaseError(
                f"cannot connect to Oracle ({self.cfg.dsn}) as {self.cfg.user}: {mask_text(str(exc)).strip()} "
                f"(hint: dsn is host:port/service_name; the account is created by config/sql/oracle/02_readonly_account.sql)"
            ) from None
        conn.outputtypehandler = _decimal_numbers
        if schema:
            with conn.cursor() as cur:
                cur.execute(f"ALTER SESSION SET CURRENT_SCHEMA = {schema}")
        return conn

    def _fetch(self, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
        import oracledb

        conn = self.connection
        try:
            with conn.cursor() as cur:
                cur.execute(READ_ONLY_SQL)
                cur.execute(sql, params or {})
                if cur.description is None:
                    return [], []
                columns = [d[0].lower() for d in cur.description]
                return columns, cur.fetchall()
        except oracledb.Error as exc:
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
