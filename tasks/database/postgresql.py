"""PostgreSQL-family e-bill databases (PostgreSQL, openGauss, KingbaseES) through psycopg 3."""
from __future__ import annotations

from typing import Any, ClassVar

import psycopg

from tasks.database.base import DatabaseError, EbillDatabase, TablespaceUsage
from tasks.database.params import to_pyformat
from tasks.masking import mask_text

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


class PostgresEbillDatabase(EbillDatabase):
    dialect: ClassVar[str] = "postgresql"

    def _connect(self) -> Any:
        options = "-c default_transaction_read_only=on"
        if self.cfg.schema_name:
            # search_path lets checks name the canonical views without a schema
            options += f" -c search_path={self.cfg.schema_name}"
        try:
            # autocommit: every statement is its own (read-only) transaction, so a check never
            # leaves an idle transaction holding back vacuum on the hospital's database
            return psycopg.connect(
                self.cfg.dsn,
                user=self.cfg.user,
                password=self._password(),
                connect_timeout=self.cfg.connect_timeout_s,
                options=options,
                application_name="ebill-ops",
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL ({self.cfg.dsn}) as {self.cfg.user}: {mask_text(str(exc)).strip()} "
                f"(hint: check database.dsn, the account of config/sql/postgresql/02_readonly_account.sql and its password variable)"
            ) from None

    def _fetch(self, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
        try:
            with self.connection.cursor() as cur:
                if params is None:
                    cur.execute(sql)
                else:
                    cur.execute(to_pyformat(sql), params)
                if cur.description is None:
                    return [], []
                return [d.name.lower() for d in cur.description], cur.fetchall()
        except psycopg.Error as exc:
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
