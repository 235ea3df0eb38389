"""`ebops fleet up | down | status`: a Prefect server on the sandbox's PostgreSQL, the process work
pool and N workers, as a vendor would run them for many hospitals (one worker inside each
hospital's network, polling out), all on 127.0.0.1.

The server gets a database of its own (`prefect_fleet`) in the sandbox's PostgreSQL cluster
(PREFECT_API_DATABASE_CONNECTION_URL, postgresql+asyncpg); its password reaches the server only
through its environment. State (PIDs, port) is in <sandbox>/fleet/state.json; logs beside it.
Everything is started in a session of its own and stopped by its PID (process group), nothing by
name. The workers run each flow run in a child process of their own group, so stopping (or
killing) a worker stops its runs too, as losing the machine would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from flows.local_server import free_port, pid_alive, stop_group, wait_healthy
from sandbox import manager, postgres

DATABASE = "prefect_fleet"
STARTUP_TIMEOUT_S = 600   # the first start creates ~150 tables in PostgreSQL: minutes on a busy 2-core box


def fleet_dir() -> Path:
    d = Path(os.environ.get("EBOPS_FLEET_DIR") or manager.root() / "fleet")
    d.mkdir(parents=True, exist_ok=True)
    return d


def read_state() -> dict:
    f = fleet_dir() / "state.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _write_state(state: dict) -> None:
    (fleet_dir() / "state.json").write_text(json.dumps(state, indent=2))


def ensure_database(name: str = DATABASE) -> str:
    """The Prefect server's own database in the sandbox's cluster; returns its SQLAlchemy URL."""
    import psycopg

    pg, creds = manager.read_state()["postgres"], manager.credentials()
    with psycopg.connect(postgres.admin_conninfo(pg, creds, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    password = quote(creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"], safe="")
    return f"postgresql+asyncpg://{pg['admin_user']}:{password}@127.0.0.1:{pg['pg_port']}/{name}"


def drop_database(name: str) -> None:
    """Remove a fleet database (a test's own, after its server stopped)."""
    import psycopg

    pg, creds = manager.read_state()["postgres"], manager.credentials()
    with psycopg.connect(postgres.admin_conninfo(pg, creds, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _base_env(api: str) -> dict[str, str]:
    env = dict(os.environ, PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(fleet_dir() / "prefect-home"))
    # Every flow run is a new Python process: with PYTHONDONTWRITEBYTECODE (set on some machines)
    # each one compiles Prefect and the flows from source again, ~2 CPU-s more per run (measured).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def start_server(port: int | None = None, database: str = DATABASE) -> dict:
    port = port or free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _base_env(api) | {"PREFECT_API_DATABASE_CONNECTION_URL": ensure_database(database),
                            "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                            "PREFECT_UI_ENABLED": "false",
                            # the default 5 connections make the API answer 503 under a few workers' runs
                            "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "10"}
    log = fleet_dir() / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_healthy(api, proc, log, STARTUP_TIMEOUT_S)
    return {"pid": proc.pid, "port": port, "api": api, "database": database, "log": str(log)}


def start_worker(api: str, name: str, queues: list[str], pool: str, env: dict[str, str] | None = None) -> dict:
    """`prefect worker start` polling `queues` of `pool`; each flow run heartbeats every HEARTBEAT_S
    (the crash automation's clock)."""
    from deployments.fleet import HEARTBEAT_S, REPO

    log = fleet_dir() / f"worker-{name}.log"
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
            "--name", name]
    for q in queues:
        args += ["--work-queue", q]
    # INFO: the worker's log names every flow run it submits (which worker ran what)
    wenv = _base_env(api) | {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S), "EBOPS_HOME": str(REPO),
                             "PREFECT_LOGGING_LEVEL": "INFO"}
    wenv |= env or {}
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=wenv, cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return {"name": name, "pid": proc.pid, "queues": queues, "log": str(log)}


def up(workers: list[list[str]], pool: str | None = None) -> dict:
    """The server (reused when it runs), the pool and automations, and one worker per queue list."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.fleet import ensure_automations, ensure_pool, ensure_queue
    from deployments.prefect_yaml import POOL
    from prefect.client.orchestration import get_client

    pool = pool or POOL
    manager.export_credentials()  # the workers' flow runs read the site files' secrets from here
    state = read_state()
    server = state.get("server")
    if not server or not pid_alive(server["pid"]):
        server = start_server()
    state = {"server": server, "pool": pool, "workers": [w for w in state.get("workers", []) if pid_alive(w["pid"])]}
    with temporary_settings({PREFECT_API_URL: server["api"]}), get_client(sync_client=True) as client:
        ensure_pool(client, pool)
        ensure_automations(client)
        for qs in workers:
            for q in qs:
                ensure_queue(client, q, pool)
    taken = {w["name"] for w in state["workers"]}
    for i, qs in enumerate(workers, start=1):
        name = f"fleet-worker-{i}"
        if name not in taken:
            state["workers"].append(start_worker(server["api"], name, qs, pool))
    _write_state(state)
    return state


def stop_worker(worker: dict) -> None:
    stop_group(worker["pid"])


def down() -> list[str]:
    state, stopped = read_state(), []
    for w in state.get("workers", []):
        if pid_alive(w["pid"]):
            stop_group(w["pid"])
            stopped.append(w["name"])
    server = state.get("server")
    if server and pid_alive(server["pid"]):
        stop_group(server["pid"])
        stopped.append(f"server :{server['port']}")
    _write_state({})
    return stopped


def status() -> dict:
    state = read_state()
    server = state.get("server") or {}
    return {"server": {**server, "running": pid_alive(server.get("pid"))},
            "workers": [{**w, "running": pid_alive(w["pid"])} for w in state.get("workers", [])]}
