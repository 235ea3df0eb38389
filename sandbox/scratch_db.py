"""Scratch copies of the sandbox's vendor schema for the row check's tests and bench: databases of
the caller's own on the sandbox's PostgreSQL, each restored from ONE pg_dump (the sandbox's traffic
keeps writing, so copies taken from the live database would differ), dropped afterwards. The
sandbox itself is only read. Also the row check's PostgreSQL side over a plain psycopg connection.
"""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg import sql

from tasks.connect.database.postgresql import pg_fetch, pg_stream
from tasks.migration.rowcheck import Side


@contextmanager
def vendor_copies(state: dict, creds: dict, names: dict[str, str], work: Path, *,
                  c_collated: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """{key: admin conninfo} of one database per `names` entry (key -> database name), each a copy
    of the vendor schema; the keys in `c_collated` get LC_COLLATE 'C' (Oracle's binary order)."""
    from sandbox import postgres

    env = dict(os.environ, PGPASSWORD=creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    conn_args = ["-h", "127.0.0.1", "-p", str(state["pg_port"]), "-U", "postgres"]
    dump = work / "ebill.dump"

    def tool(name: str, *args: str) -> None:
        subprocess.run([os.path.join(state["bin_dir"], name), *conn_args, *args], check=True, env=env,
                       capture_output=True, timeout=600)

    tool("pg_dump", "-d", state.get("database", "ebill"), "-n", state.get("vendor_schema", "ebill"), "-Fc",
         "-f", str(dump))
    admin = postgres.admin_conninfo(state, creds, "postgres")
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            for key, name in names.items():
                collate = sql.SQL(" LC_COLLATE 'C' LC_CTYPE 'C'") if key in c_collated else sql.SQL("")
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'{}")
                             .format(sql.Identifier(name), collate))
        for name in names.values():
            tool("pg_restore", "-d", name, "--no-owner", "--no-tablespaces", str(dump))
        yield {key: postgres.admin_conninfo(state, creds, name) for key, name in names.items()}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names.values():
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pg_side(conn: psycopg.Connection, schema: str) -> Side:
    """As tasks/migration/db.side_reading reads a PostgreSQL side: one read-only snapshot."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def fetch(st):
        names, rows = pg_fetch(conn, st.sql, st.params)
        return [dict(zip(names, r)) for r in rows]
    return Side("postgresql", schema, fetch, lambda st, batch: pg_stream(conn, st.sql, st.params, batch))
