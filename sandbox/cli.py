"""`ebops sandbox up|down|status|env` and `ebops demo`: the commands of the sandbox hospital.

They belong to the sandbox, not to flows/: flows never import sandbox/ (a hospital's worker runs
the same flows against real servers). The `ebops` entry point (ebops_cli.py) mounts them beside
the duty commands of flows/cli.py; `ebops demo` runs those duties against the sandbox.
"""
from __future__ import annotations

import typer

from flows.cli import _run_inspection, _run_precheck, _run_quality, console
from flows.cli_output import FormatOpt, OutputFormat, emit

sandbox_app = typer.Typer(no_args_is_help=True, help="the sandbox hospital (demo and tests)")


def register(app: typer.Typer) -> None:
    """Add `sandbox …` and `demo` to the ebops command."""
    from sandbox.cli_fleet import fleet_app

    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(fleet_app, name="fleet")
    app.command()(demo)


@sandbox_app.command("up")
def sandbox_up(days: int = typer.Option(400, help="days of bills to generate"),
               bills_per_day: int = typer.Option(60, help="bills per day"),
               with_target: bool = typer.Option(False, "--with-target", help="also the migration's new servers "
                                                "db2/app2 and the e-bill application on app1 (服务器迁移)")) -> None:
    """Start the sandbox hospital (harmless when it already runs)."""
    from sandbox import manager

    state = manager.up(days=days, bills_per_day=bills_per_day, with_target=with_target)
    _print_status(state)
    _approve_demo()


def _approve_demo() -> None:
    """Record the demo site's standing approvals (fresh backup, backup verification) if none is valid."""
    from sandbox import manager
    from sandbox.approvals import ensure_demo_approvals

    manager.export_credentials()
    for rec in ensure_demo_approvals():
        console.print(f"standing approval of {rec.duty}: {rec.approver} ({rec.role}), plan {rec.plan_sha256[:16]}…, "
                      f"until {rec.expires_at:%Y-%m-%d} ({rec.key})", soft_wrap=True, markup=False)


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop every process the sandbox started, by PID."""
    from sandbox import manager

    stopped = manager.down()
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


def _print_status(state: dict, fmt: OutputFormat = OutputFormat.table) -> None:
    from sandbox import manager

    running = manager.status()
    rows, data = [], {"root": str(manager.root()), "components": {}}
    for name, is_up in running.items():
        comp = state.get(name) or {}
        ports = {k: v for k, v in comp.items() if k in manager.VAR_KEYS}
        rows.append((name, "yes" if is_up else "no", str(comp.get("pid", "")),
                     ", ".join(f"{k}={v}" for k, v in ports.items())))
        data["components"][name] = {"running": is_up, "pid": comp.get("pid"), **ports}
    # Through the shared helper: off a terminal a path like bin_dir is printed whole, not cut with "…".
    emit(fmt, console, title=f"sandbox {manager.root()}", columns=("component", "running", "pid", "ports"), rows=rows,
         data=data, cell_styles={"running": {"yes": "green", "no": "red"}})


@sandbox_app.command("status")
def sandbox_status(fmt: OutputFormat = FormatOpt) -> None:
    """Which sandbox servers run, with PIDs and ports."""
    from sandbox import manager

    _print_status(manager.read_state(), fmt)
    raise typer.Exit(0 if all(manager.status().values()) else 1)


@sandbox_app.command("env")
def sandbox_env() -> None:
    """Print `export` lines for the sandbox's secrets: eval "$(ebops sandbox env)"."""
    from sandbox import manager

    for k, v in manager.credentials().items():
        print(f"export {k}={v}")


def demo() -> None:
    """Start the sandbox hospital, run the inspection, the pre-holiday check and the data-quality check, print the findings and the evidence, stop it."""
    from flows.cli_interrupt import also_on_stop
    from sandbox import manager

    console.rule("starting the sandbox hospital")
    _print_status(manager.up())
    manager.export_credentials()
    try:
        with also_on_stop(manager.down):  # Ctrl-C ends the process at once: it must stop the sandbox too
            _approve_demo()
            console.rule("inspection (巡检) of site demo")
            code = _run_inspection("demo", "adhoc")
            console.rule("pre-holiday check (节前巡检) of site demo, for the next ≥3-day holiday")
            code = max(code, _run_precheck("demo", engineer="演示工程师"))
            console.rule("invoice data quality (票据数据质量检查) of site demo, yesterday's bills")
            code = max(code, _run_quality("demo", engineer="演示工程师"))
    finally:
        console.rule("stopping the sandbox")
        manager.down()
    raise typer.Exit(code)
