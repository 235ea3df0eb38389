"""`ebops fleet up | deploy | status | down | yaml`: many hospitals on Prefect's own distribution.

`up` starts, for the sandbox, a Prefect server on the sandbox's PostgreSQL (database
`prefect_fleet`), the process work pool `hospital-pool` and one worker per site (each polling
its site's queue, as a worker inside that hospital's network would); `deploy` registers every
site's deployments (deployments/serve.py's list) with a work queue per site; `yaml` writes the
same list as prefect.yaml for a real server (`prefect deploy --all`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli import console, err

fleet_app = typer.Typer(no_args_is_help=True, help="many hospitals: Prefect server, work pool, workers")


def _sites(sites: list[str] | None) -> list[str]:
    from flows.fleet import fleet_site_names

    return sites or fleet_site_names()


@fleet_app.command("up")
def fleet_up(sites: Optional[list[str]] = typer.Argument(None, help="sites (one worker each); all site files when omitted"),
             workers: int = typer.Option(0, help="N workers each polling every site's queue, instead of one per site")) -> None:
    """Start the Prefect server on the sandbox's PostgreSQL, the work pool and the workers."""
    from sandbox import fleet, manager

    if not manager.status().get("postgres"):
        err.print("[red]fleet:[/] the sandbox's PostgreSQL is not running (hint: ebops sandbox up)")
        raise typer.Exit(2)
    names = _sites(sites)
    queues = [names] * workers if workers else [[s] for s in names]
    state = fleet.up(queues)
    _print(state)
    console.print(f"next: PREFECT_API_URL={state['server']['api']} ebops fleet deploy {' '.join(names)}")


@fleet_app.command("deploy")
def fleet_deploy(sites: Optional[list[str]] = typer.Argument(None, help="sites; all site files when omitted")) -> None:
    """Register every site's deployments (queue = site) on PREFECT_API_URL, or on `fleet up`'s server."""
    import os

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.fleet import deploy
    from sandbox import fleet

    api = os.environ.get("PREFECT_API_URL") or (fleet.read_state().get("server") or {}).get("api")
    if not api:
        err.print("[red]fleet:[/] no Prefect server (hint: set PREFECT_API_URL, or ebops fleet up)")
        raise typer.Exit(2)
    with temporary_settings({PREFECT_API_URL: api}):
        done = deploy(_sites(sites))
    for site, deps in done.items():
        console.print(f"{site}: {len(deps)} deployments on queue {site}: {', '.join(deps)}")


@fleet_app.command("yaml")
def fleet_yaml(sites: Optional[list[str]] = typer.Argument(None, help="sites; all site files when omitted"),
               out: Path = typer.Option(Path("deployments/prefect.yaml"), help="file to write")) -> None:
    """Write prefect.yaml from the list `ebops ui` serves (for `prefect deploy --all`)."""
    from deployments.prefect_yaml import render

    out.write_text(render(_sites(sites)), encoding="utf-8")
    console.print(f"wrote {out}")


@fleet_app.command("status")
def fleet_status() -> None:
    """The fleet's server and workers: PIDs, queues, running or not."""
    from sandbox import fleet

    _print(fleet.status())


@fleet_app.command("down")
def fleet_down() -> None:
    """Stop the workers and the server, by PID (the database stays)."""
    from sandbox import fleet

    console.print("stopped: " + (", ".join(fleet.down()) or "nothing was running"))


def _print(state: dict) -> None:
    from flows.local_server import pid_alive

    server = state.get("server") or {}
    console.print(f"server {server.get('api', '-')} pid {server.get('pid', '-')} "
                  f"({'running' if pid_alive(server.get('pid')) else 'stopped'}), database {server.get('database', '-')}")
    for w in state.get("workers", []):
        console.print(f"  {w['name']} pid {w['pid']} queues {', '.join(w['queues'])} "
                      f"({'running' if pid_alive(w['pid']) else 'stopped'}) log {w['log']}")
