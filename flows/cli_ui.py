"""`ebops ui`: a local Prefect server on 127.0.0.1 serving every deployment of the named sites.

The server is a child process started here and stopped by its PID when serving ends, on Ctrl-C
(SIGINT) or a service manager's SIGTERM alike, so nothing is left running. The UI then shows each
deployment, its next run times (the pre-holiday check's come from the holiday calendar) and a
form for manual runs.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import typer
from rich.console import Console

from flows.local_server import ServerFailed, free_port, port_open, start_server, stop_group, wait_healthy
from tasks.core.holiday_files import HolidayFileError

err = Console(stderr=True)


class _Stopped(Exception):
    """A stop signal while the server was still starting."""


def _stop_while_starting(signum: int, _frame) -> None:
    raise _Stopped(signal.Signals(signum).name)


def ui(sites: list[str] = typer.Argument(None, help="sites to serve (default: demo)"),
       port: int = typer.Option(0, help="UI port on 127.0.0.1 (0 = 4200 if free, else any free port)")) -> None:
    """Start a local Prefect server and serve every deployment; Ctrl-C or SIGTERM stops both."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.serve import deployments, serve_until_signal

    if port and port_open(port):
        err.print(f"[red]ui:[/] port {port} on 127.0.0.1 is in use (hint: another --port, or 0 for a free one)")
        raise typer.Exit(2)
    try:   # before any server starts: a site file that does not load is one line, nothing to stop
        deps = [d for s in (sites or ["demo"]) for d in deployments(s)]
    except HolidayFileError as exc:
        err.print(f"[red]holiday calendar:[/] {exc}")
        raise typer.Exit(2) from None
    port = port or (free_port() if port_open(4200) else 4200)
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    log = home / "ebops-ui-server.log"
    api = f"http://127.0.0.1:{port}/api"
    # Until serving begins a stop signal unwinds through `finally`, so the server is stopped too.
    previous = {s: signal.signal(s, _stop_while_starting) for s in (signal.SIGTERM, signal.SIGINT)}
    proc, stopped_by = None, "end"
    try:
        proc = start_server(port, log)
        typer.echo(f"starting Prefect server (pid {proc.pid}), log {log} ...")
        wait_healthy(api, proc, log)
        os.environ["PREFECT_API_URL"] = api   # for flow runs the runner starts as subprocesses
        with temporary_settings({PREFECT_API_URL: api}):
            typer.echo(f"Prefect UI: http://127.0.0.1:{port}  — serving {len(deps)} deployments; Ctrl-C to stop")
            stopped_by = serve_until_signal(deps)
    except _Stopped as exc:
        stopped_by = str(exc)
    except ServerFailed as exc:
        err.print(f"[red]ui:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        for s in previous:   # a second Ctrl-C must not cut the server's stop short
            signal.signal(s, signal.SIG_IGN)
        if proc is not None:
            stop_group(proc.pid)   # the server we started (and its process group), by its PID
        for s, h in previous.items():
            signal.signal(s, h)
    typer.echo(f"ebops ui: stopped ({stopped_by}); Prefect server pid {proc.pid} stopped, port {port} closed")
