"""The migration's new servers (服务器迁移): db2 (a second PostgreSQL, empty `ebill` database) and
app2 (the application installed, stopped), plus the application on app1 running against db1.

Started only by `ebops sandbox up --with-target` (make demo stays as fast as before). db2 is
prepared the way a DBA prepares a migration target: the same roles (vendor owner, read-only and
verification accounts) and the same yearly tablespaces exist, the database is created and empty;
the data arrives by the migration's pg_dump -> SSH copy -> pg_restore.

db2's tree sits beside db1's (as root: in db1's server tree's parent under /tmp/ebops-<uid>, with
<root>/hosts/db2 a symlink to it, for the same reason as db1: sandbox/server_tree.py).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sandbox import ebill_app, postgres, sshd
from sandbox.ports import free_port, port_open, wait_until

HOSTS = sshd.TARGET_HOSTS
KNOWN_HOSTS = "known_hosts_target"


def _db2(root: Path) -> Path:
    """db2's tree as the server sees it; <root>/hosts/db2 leads there."""
    root = Path(root).resolve()
    real = (root / "hosts" / "db1").resolve().parent / "db2"
    link = root / "hosts" / "db2"
    real.mkdir(parents=True, exist_ok=True)
    if real != link and not link.exists():
        link.symlink_to(real, target_is_directory=True)
    return real


def _paths(root: Path) -> dict[str, Path]:
    d = _db2(root)
    return {"pgdata": d / "u01" / "pgdata", "tablespaces": d / "u01" / "tablespaces", "log_dir": d / "log",
            "log_file": d / "log" / "postgresql.log", "ready": d / "u01" / ".ebill-target-ready",
            "transfer": d / "transfer"}


def _state_file(root: Path) -> Path:
    return Path(root) / "target-state.json"


def _admin(port: int, creds: dict[str, str], dbname: str = "postgres") -> str:
    return make_conninfo(host="127.0.0.1", port=port, dbname=dbname, user=postgres.ADMIN,
                         password=creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"], connect_timeout=120)


def _start_db2(root: Path, creds: dict[str, str], source: dict) -> dict:
    user = postgres._os_user()
    p = _paths(root)
    running = postgres._postmaster(p["pgdata"])
    if running and p["ready"].exists():
        return {"pid": running[0], "pg_port_db2": running[1], "pgdata": str(p["pgdata"])}
    fresh = not (p["pgdata"] / "PG_VERSION").exists()
    for d, mode in ((p["pgdata"], 0o700), (p["tablespaces"], 0o700), (p["log_dir"], 0o755)):
        postgres._own_dir(d, user, mode)
    p["transfer"].mkdir(mode=0o700, exist_ok=True)
    if fresh:
        postgres._initdb(root, p["pgdata"], user, creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    port = free_port()
    sock = Path(postgres._socket_dir(root)).with_name(Path(postgres._socket_dir(root)).name + "-db2")
    postgres._own_dir(sock, user, 0o700)
    postgres._run([str(postgres.bin_dir(root) / "pg_ctl"), "-D", str(p["pgdata"]), "-w", "-t", "300", "-l",
                   str(p["log_file"]), "-o", f"-h 127.0.0.1 -p {port} -k {sock} -c log_timezone={postgres.TZ} "
                   f"-c timezone={postgres.TZ}", "start"], user, timeout=600)
    wait_until(lambda: postgres._postmaster(p["pgdata"]) is not None and port_open(port), 300, "db2 PostgreSQL")
    pid, port = postgres._postmaster(p["pgdata"])
    if not p["ready"].exists():
        _prepare(port, creds, source, p["tablespaces"], user)
        p["ready"].write_text("migration target prepared (roles, tablespaces, empty ebill)\n")
    return {"pid": pid, "pg_port_db2": port, "pgdata": str(p["pgdata"])}


def _prepare(port: int, creds: dict[str, str], source: dict, ts_root: Path, user) -> None:
    """What the DBA does before a migration: the roles and tablespaces the dump refers to, and the
    empty database (its settings too: ALTER DATABASE is not in a pg_dump -Fc of the database)."""
    with psycopg.connect(postgres.admin_conninfo(source, creds, "postgres"), autocommit=True) as src:
        spaces = [r[0] for r in src.execute("SELECT spcname FROM pg_tablespace WHERE spcname LIKE 'ts\\_%' ORDER BY 1")]
    pw = {postgres.VENDOR_OWNER: creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"], postgres.RO_USER: creds["EBOPS_DEMO_DB_PASSWORD"],
          postgres.VERIFY_USER: creds["EBOPS_DEMO_DB_VERIFY_PASSWORD"]}
    with psycopg.connect(_admin(port, creds), autocommit=True) as conn:
        for role, password in pw.items():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(f"ALTER ROLE {postgres.RO_USER} CONNECTION LIMIT 10")
        conn.execute(f"ALTER ROLE {postgres.RO_USER} SET default_transaction_read_only = on")
        conn.execute(f"ALTER ROLE {postgres.RO_USER} SET search_path = {postgres.CANON_SCHEMA}")
        conn.execute(f"ALTER ROLE {postgres.RO_USER} SET statement_timeout = '10min'")
        conn.execute(f"GRANT pg_monitor TO {postgres.RO_USER}")
        conn.execute(f"ALTER ROLE {postgres.VERIFY_USER} CREATEDB")
        conn.execute(f"GRANT pg_read_all_data TO {postgres.VERIFY_USER}")
        for ts in spaces:
            loc = ts_root / ts
            postgres._own_dir(loc, user, 0o700)
            conn.execute(f"CREATE TABLESPACE {ts} OWNER {postgres.VENDOR_OWNER} LOCATION '{loc}'")
        conn.execute(f"CREATE DATABASE {postgres.DATABASE} OWNER {postgres.VENDOR_OWNER} ENCODING 'UTF8' TEMPLATE template0")
        conn.execute(f"ALTER DATABASE {postgres.DATABASE} SET timezone TO 'Asia/Shanghai'")


def _pgpass(home: Path, port: int, creds: dict[str, str]) -> None:
    f = Path(home) / ".pgpass"
    f.touch(mode=0o600)
    f.chmod(0o600)
    f.write_text(f"127.0.0.1:{port}:*:postgres:{creds['EBOPS_DEMO_DB_ADMIN_PASSWORD']}\n"
                 f"127.0.0.1:{port}:*:ebops_verify:{creds['EBOPS_DEMO_DB_VERIFY_PASSWORD']}\n")


def _app_ctl(home: Path, action: str) -> None:
    proc = subprocess.run(["/bin/sh", str(ebill_app.app_dir(home) / "bin" / "ebill-app.sh"), action], cwd=home,
                          env=dict(os.environ, HOME=str(home)), capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"ebill-app {action} on {home.name} failed: {proc.stdout}{proc.stderr}")


def is_running(state: dict) -> bool:
    return bool(state) and postgres.pid_alive(state.get("pid")) and port_open(int(state.get("pg_port_db2", 0))) \
        and sshd.is_running(state.get("ssh", {}), HOSTS)


def start(root: Path, creds: dict[str, str], source: dict) -> dict:
    """db2, the SSH hosts db2/app2, the application installed on app1 (running against db1) and
    app2 (stopped, its datasource still the copied one: the cut-over rewrites it)."""
    root = Path(root).resolve()
    db = _start_db2(root, creds, source)
    ssh = sshd.start(root, creds, hosts=HOSTS, known_hosts_name=KNOWN_HOSTS)
    hosts = root / "hosts"
    _pgpass(_db2(root), db["pg_port_db2"], creds)
    ports = {}
    for name in ("app1", "app2"):
        ports[name] = free_port()
        ebill_app.install(hosts / name, ports[name], host="127.0.0.1", port=source["pg_port"],
                          database=postgres.DATABASE, user=postgres.VENDOR_OWNER,
                          password=creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    _app_ctl(hosts / "app1", "start")
    state = {**db, "root": str(root), "ssh": ssh, "ssh_port_db2": ssh["ssh_port_db2"], "ssh_port_app2": ssh["ssh_port_app2"],
             "app_port_app1": ports["app1"], "app_port_app2": ports["app2"],
             "transfer_dir_db2": str(_paths(root)["transfer"])}
    _state_file(root).write_text(json.dumps(state, indent=2))
    return state


def stop(state: dict) -> None:
    """The applications (by their pid files' PIDs), the target's SSH process, db2."""
    for name in ("app1", "app2"):
        pid = ebill_app.pid_of(Path(state.get("root", ".")) / "hosts" / name)
        if pid:
            postgres.stop_pid(pid)
    sshd.stop(state.get("ssh", {}))
    postgres.stop({"pid": state.get("pid")})


def reset(root: Path, creds: dict[str, str], source: dict, state: dict) -> None:
    """Put the target back as `start` left it, for the next migration test: app2 stopped with the
    copied datasource, db2's ebill database empty again, app1 running against db1."""
    root = Path(root).resolve()
    hosts = root / "hosts"
    _app_ctl(hosts / "app2", "stop")
    with psycopg.connect(_admin(state["pg_port_db2"], creds), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {postgres.DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {postgres.DATABASE} OWNER {postgres.VENDOR_OWNER} ENCODING 'UTF8' TEMPLATE template0")
        conn.execute(f"ALTER DATABASE {postgres.DATABASE} SET timezone TO 'Asia/Shanghai'")
    for name in ("app1", "app2"):
        ebill_app.write_datasource(hosts / name, "127.0.0.1", source["pg_port"], postgres.DATABASE,
                                   postgres.VENDOR_OWNER, creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    for f in _paths(root)["transfer"].glob("*"):
        f.unlink()
    _app_ctl(hosts / "app1", "start")
