"""Both sides' databases as the migration reads them: one read-only, repeatable-read session per
side (the verification account), and the few statements of the preflight per dialect. Every
Oracle statement here is parsed with sqlglot's oracle dialect in tests/unit/test_migration_pure.py.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from config.migration import MigrationConfig, MigrationSide
from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify import measure

# the smoke test's bill and its red bill, read back from the target (the vendor's bill table)
_TEST_BILLS = ("SELECT bill_batch_code AS bill_code, bill_number AS bill_no, red_flag, rel_bill_batch_code AS orig_code, "
               "rel_bill_number AS orig_no, bill_state, total_amt, ivc_datetime AS issued, payer AS payer_name "
               "FROM {schema}.t_ebill_main WHERE (bill_batch_code = :code AND bill_number = :no) "
               "OR (bill_batch_code = :red_code AND bill_number = :red_no)")

# A query's rows in batches, never all in memory: (statement, batch) -> rows
Stream = Callable[[fp.Statement, int], Iterator[tuple]]

SQL = {
    "postgresql": {
        "version": "SELECT version() AS version, current_setting('server_version_num') AS num",
        "size": "SELECT pg_database_size(current_database()) AS bytes",
        "user_tables": ("SELECT COUNT(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', "
                        "'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_%'"),
        "tablespaces": ("SELECT DISTINCT t.spcname AS name FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema"),
        "all_tablespaces": "SELECT spcname AS name FROM pg_tablespace",
        "newest_bill": "SELECT MAX(ivc_datetime) AS newest, COUNT(*) AS bills FROM {schema}.t_ebill_main",
        "identity": "SELECT (SELECT system_identifier FROM pg_control_system())::text AS ident",
        "test_bills": _TEST_BILLS,
    },
    "oracle": {
        "version": "SELECT banner AS version, (SELECT version FROM v$instance) AS num FROM v$version WHERE ROWNUM = 1",
        "size": "SELECT SUM(bytes) AS bytes FROM dba_segments WHERE owner = :schema",
        # what RMAN DUPLICATE copies: every datafile of the database (the estimate of rman_duplicate)
        "database_size": "SELECT SUM(bytes) AS bytes FROM dba_data_files",
        "user_tables": "SELECT COUNT(*) AS n FROM dba_objects WHERE owner = :schema",
        "tablespaces": "SELECT DISTINCT tablespace_name AS name FROM dba_segments WHERE owner = :schema",
        "all_tablespaces": "SELECT tablespace_name AS name FROM dba_tablespaces",
        "newest_bill": "SELECT MAX(ivc_datetime) AS newest, COUNT(*) AS bills FROM {schema}.t_ebill_main",
        "identity": "SELECT TO_CHAR(dbid) AS ident FROM v$database",
        "test_bills": _TEST_BILLS,
        # a Data Pump target: the canonical views' owner must not exist yet, the checks' accounts must
        # (tasks/migration/preflight_oracle.py); :username upper-case, as Oracle folds unquoted names
        "user_exists": "SELECT COUNT(*) AS n FROM dba_users WHERE username = :username",
    },
}


def statement(dialect: str, name: str, schema: str, params: dict | None = None) -> fp.Statement:
    """One of the statements above; `schema` is bound (catalog queries) or quoted (the bill table);
    `params` binds the statement's other :names."""
    text = SQL[dialect][name]
    if "{schema}" in text:
        return fp.Statement(text.format(schema=fp.quote(dialect, schema)), params or {})
    bound = {"schema": measure.catalog_name(dialect, schema)} if ":schema" in text else {}
    return fp.Statement(text, {**bound, **(params or {})})


@contextmanager
def side_reading(cfg: MigrationConfig, side: MigrationSide, *,
                 snapshot: bool = True) -> Iterator[tuple[measure.Fetch, Stream]]:
    """A read-only session on one side: (fetch, stream), the second for reading whole tables in
    batches (the row check); `snapshot`: one repeatable-read transaction (PostgreSQL), so
    everything read in it describes one instant. Each side in its own dialect (side.engine)."""
    if side.engine == "postgresql":
        from tasks.backup.verify import pg_steps
        from tasks.backup.verify.pg_flow_steps import fetcher
        from tasks.connect.database.postgresql import pg_stream

        with pg_steps.connect(side.database, autocommit=False) as conn:
            if snapshot:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield fetcher(conn), lambda st, batch: pg_stream(conn, st.sql, st.params, batch)
            finally:
                conn.rollback()
    else:
        from tasks.backup.verify import oracle_tasks
        from tasks.connect.database.oracle import oracle_stream

        conn = oracle_tasks.connect(side.database)
        try:
            yield oracle_tasks.fetcher(conn), lambda st, batch: oracle_stream(conn, st.sql, st.params, batch)
        finally:
            conn.close()


@contextmanager
def side_session(cfg: MigrationConfig, side: MigrationSide, *, snapshot: bool = True) -> Iterator[measure.Fetch]:
    """side_reading's fetch alone (the preflight, the freeze, the measuring)."""
    with side_reading(cfg, side, snapshot=snapshot) as (fetch, _stream):
        yield fetch


def one(fetch: measure.Fetch, dialect: str, name: str, schema: str) -> dict:
    rows = fetch(statement(dialect, name, schema))
    return rows[0] if rows else {}


def side_one(fetch: measure.Fetch, side: MigrationSide, name: str) -> dict:
    """One of the statements above on `side`, in its dialect and its spelling of the schema."""
    return one(fetch, side.engine, name, side.schema)


def host_port(dsn: str, dialect: str) -> tuple[str, int]:
    """Where the database listens, from the DSN (libpq conninfo, or Oracle host:port/service)."""
    if dialect == "postgresql":
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
        return str(d.get("host", "127.0.0.1")), int(d.get("port", 5432))
    hostport = dsn.split("/", 1)[0]
    host, _, port = hostport.partition(":")
    return host, int(port or 1521)
