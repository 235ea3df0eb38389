"""`ebops ui`: a local Prefect server on 127.0.0.1 serving every deployment of the named sites.

The server is a child process started here and stopped by its PID when serving ends (Ctrl-C),
so nothing is left running. The UI then shows each deployment, its next run times (the pre-holiday
check's come from the holiday calendar) and a form for manual runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer

from sandbox.ports import free_port, port_open, stop_pid

STARTUP_TIMEOUT_S = 900  # the first start migrates the server's SQLite database: minutes on 2 cores


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)  # polling a server's readiness, with a deadline
    raise RuntimeError(f"prefect server not healthy after {STARTUP_TIMEOUT_S} s; see {log}")


def ui(sites: list[str] = typer.Argument(None, help="sites to serve (default: demo)"),
       port: int = typer.Option(0, help="UI port on 127.0.0.1 (0 = 4200 if free, else any free port)")) -> None:
    """Start a local Prefect server and serve every deployment; Ctrl-C stops both."""
    from deployments.serve import main as serve_main

    port = port or (free_port() if port_open(4200) else 4200)
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    log = home / "ebops-ui-server.log"
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        typer.echo(f"starting Prefect server (pid {proc.pid}), log {log} ...")
        _wait_healthy(api, proc, log)
        os.environ["PREFECT_API_URL"] = api
        typer.echo(f"Prefect UI: http://127.0.0.1:{port}  — serving deployments; Ctrl-C to stop")
        serve_main(sites or ["demo"])
    finally:
        stop_pid(proc.pid, timeout=30)  # the server we started, by its PID
