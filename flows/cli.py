"""`ebops`: the command line of ebill-ops (typer + rich, like Prefect's own CLI).

    ebops config check [SITE ...]     every problem of the site files, with file, field and hint
    ebops inspect SITE                run the inspection flow now
    ebops precheck SITE               run the pre-holiday check (节前巡检) now
    ebops schedule SITE               when the pre-holiday checks run (from the holiday calendar)
    ebops ui                          a local Prefect server serving every deployment
    ebops evidence list|show|get|verify|url
    ebops sandbox up|down|status|env  the demo hospital on 127.0.0.1
    ebops demo                        sandbox up, inspection, summary, sandbox down

Errors a user can fix are printed as one line with a hint and exit code 2, never a traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from config.problems import SiteConfigError
from config.settings import check_sites

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ebill-ops: e-bill system maintenance duties")
config_app = typer.Typer(no_args_is_help=True, help="site files")
sandbox_app = typer.Typer(no_args_is_help=True, help="the sandbox hospital (demo and tests)")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")
console = Console()
err = Console(stderr=True)

_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "ERROR": "bold red", "SKIPPED": "magenta"}


def _mount_evidence() -> None:
    from flows.cli_evidence import evidence_app

    app.add_typer(evidence_app, name="evidence", help="auditors: list, show, get, verify, url")
    from flows.cli_ui import ui

    app.command("ui")(ui)


@config_app.command("check")
def config_check(sites: Optional[list[str]] = typer.Argument(None, help="site names or files; all when omitted")) -> None:
    """List every problem of the site files: file, field, what is wrong, a hint."""
    report = check_sites(sites or None)
    bad = 0
    for path, problems in report.items():
        if not problems:
            console.print(f"[green]OK[/]   {path}")
            continue
        bad += 1
        console.print(f"[red]BAD[/]  {path}")
        for p in problems:
            console.print(f"     [bold]{p.field or '(file)'}[/]: {p.message}" + (f"  [dim]hint: {p.hint}[/]" if p.hint else ""))
    if not report:
        console.print("no site files found")
        raise typer.Exit(2)
    raise typer.Exit(1 if bad else 0)


def print_results(outcome) -> None:
    table = Table(title=f"{outcome.site} {outcome.duty}: {outcome.verdict.value}")
    for col in ("check", "host", "target", "value", "threshold", "status", "reason"):
        table.add_column(col, overflow="fold")
    for r in outcome.results:
        value = "" if r.value is None else f"{r.value}{r.unit}"
        table.add_row(r.title, r.host or "", r.target, value, r.threshold, f"[{_STYLE[r.status.value]}]{r.status.value}[/]",
                      r.reason[:120])
    console.print(table)
    b = outcome.bundle
    console.print(f"evidence bundle: [bold]{b.prefix}[/] ({b.location})")
    if b.report_url:
        console.print(f"report: {b.report_url}")


def _run_flow(flow_fn, label: str, **params) -> int:
    """Run a duty's flow now; print its findings even when its verdict failed the run."""
    from flows.common import VerdictFailed

    state = flow_fn(**params, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, VerdictFailed) and result.outcome is not None:
        print_results(result.outcome)
        return 1
    if isinstance(result, BaseException):
        err.print(f"[red]{label} did not finish:[/] {type(result).__name__}: {result}")
        return 2
    print_results(result)
    return 0


def _run_inspection(site: str, kind: str) -> int:
    from flows.inspection import inspection

    return _run_flow(inspection, "inspection", site=site, kind=kind)


def _run_form(flow_fn, label: str, make_params) -> int:
    """A flow whose parameters are a form (pydantic): a bad value is a one-line error, not a traceback."""
    from pydantic import ValidationError

    try:
        params = make_params()
    except ValidationError as exc:
        for e in exc.errors():  # one line a field, without pydantic's links
            err.print(f"[red]bad parameter[/] {'.'.join(str(x) for x in e['loc']) or 'form'}: {e['msg']}")
        return 2
    except ValueError as exc:
        err.print(f"[red]bad parameter:[/] {exc}")
        return 2
    return _run_flow(flow_fn, label, params=params)


def _run_precheck(site: str, holiday: str | None = None, backup: str = "run", engineer: str = "") -> int:
    from flows.holiday_precheck import PrecheckParams, holiday_precheck

    return _run_form(holiday_precheck, "pre-holiday check", lambda: PrecheckParams(
        site=site, holiday_first_day=holiday, fresh_backup=backup, engineer=engineer))


@app.command()
def inspect(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            kind: str = typer.Option("adhoc", help="monthly | quarterly | adhoc")) -> None:
    """Run the inspection (巡检) of SITE now."""
    raise typer.Exit(_run_inspection(site, kind))


@app.command()
def precheck(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
             holiday: Optional[str] = typer.Option(None, help="first day off (YYYY-MM-DD); default the next ≥3-day holiday"),
             backup: str = typer.Option("run", help="fresh backup: run | plan | skip"),
             engineer: str = typer.Option("", help="engineer's name for the report")) -> None:
    """Run the pre-holiday check (节前巡检) of SITE now."""
    raise typer.Exit(_run_precheck(site, holiday, backup, engineer))


def _run_quality(site: str, start: str | None = None, end: str | None = None, rules: str | None = None,
                 engineer: str = "") -> int:
    from flows.invoice_quality import QualityParams, invoice_quality

    return _run_form(invoice_quality, "invoice quality check", lambda: QualityParams(
        site=site, start=start, end=end, engineer=engineer,
        rules=[r.strip().upper() for r in rules.split(",")] if rules else None))


@app.command()
def quality(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            start: Optional[str] = typer.Option(None, help="first issue date (YYYY-MM-DD); default yesterday"),
            end: Optional[str] = typer.Option(None, help="last issue date, inclusive; default = start"),
            rules: Optional[str] = typer.Option(None, help="only these rules, e.g. DQ06,DQ19; default all"),
            engineer: str = typer.Option("", help="engineer's name for the report")) -> None:
    """Check SITE's bills of a period against the data-quality rules DQ01-DQ22 (票据数据质量检查)."""
    raise typer.Exit(_run_quality(site, start, end, rules, engineer))


@app.command()
def schedule(site: str = typer.Argument("demo", help="site name")) -> None:
    """Show when the pre-holiday check of SITE will run, computed from the holiday calendar."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from config.settings import load_site
    from deployments import schedules

    from tasks.calendar import HolidayFileError

    cfg = load_site(site)
    today = datetime.now(ZoneInfo(cfg.timezone)).date()
    try:
        runs, notes = schedules.planned_prechecks(today, cfg.precheck_workdays_before)
    except HolidayFileError as exc:   # a broken config/holidays/<year>.yaml: bad input, one line
        err.print(f"[red]holiday calendar:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"{site}: pre-holiday checks ({cfg.precheck_workdays_before} workdays before, {schedules.TZ})")
    for col in ("holiday", "days off", "runs at", "calendar"):
        table.add_column(col)
    for r in runs:
        h = r.holiday
        table.add_row(h.name, f"{h.first_day} ~ {h.last_day} ({h.days_off})", f"{r.run_at:%Y-%m-%d %a %H:%M}",
                      "official" if h.official else "[yellow]template[/]")
    console.print(table)
    for n in notes:
        console.print(f"[yellow]note:[/] {n}")
    sched = schedules.precheck_schedule(runs)
    console.print(f"RRULE ({schedules.TZ}): {sched.rrule if sched else 'none'}")


@sandbox_app.command("up")
def sandbox_up(days: int = typer.Option(400, help="days of bills to generate"),
               bills_per_day: int = typer.Option(60, help="bills per day")) -> None:
    """Start the sandbox hospital (harmless when it already runs)."""
    from sandbox import manager

    state = manager.up(days=days, bills_per_day=bills_per_day)
    _print_status(state)


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop every process the sandbox started, by PID."""
    from sandbox import manager

    stopped = manager.down()
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


def _print_status(state: dict) -> None:
    from sandbox import manager

    running = manager.status()
    table = Table(title=f"sandbox {manager.root()}")
    for col in ("component", "running", "pid", "ports"):
        table.add_column(col)
    for name, is_up in running.items():
        comp = state.get(name) or {}
        ports = ", ".join(f"{k}={v}" for k, v in comp.items() if k in manager.VAR_KEYS)
        table.add_row(name, "[green]yes[/]" if is_up else "[red]no[/]", str(comp.get("pid", "")), ports)
    console.print(table)


@sandbox_app.command("status")
def sandbox_status() -> None:
    """Which sandbox servers run, with PIDs and ports."""
    from sandbox import manager

    _print_status(manager.read_state())
    raise typer.Exit(0 if all(manager.status().values()) else 1)


@sandbox_app.command("env")
def sandbox_env() -> None:
    """Print `export` lines for the sandbox's secrets: eval "$(ebops sandbox env)"."""
    from sandbox import manager

    for k, v in manager.credentials().items():
        print(f"export {k}={v}")


@app.command()
def demo() -> None:
    """Start the sandbox hospital, run the inspection, the pre-holiday check and the data-quality check, print the findings and the evidence, stop it."""
    from sandbox import manager

    console.rule("starting the sandbox hospital")
    _print_status(manager.up())
    manager.export_credentials()
    try:
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


def main() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary Prefect server migrates its database on first start: minutes on a busy 2-core box.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600")
    _mount_evidence()
    try:
        app()
    except SiteConfigError as exc:
        for p in exc.problems:
            err.print(f"[red]config:[/] {p}")
        sys.exit(2)


if __name__ == "__main__":
    main()
