"""`ebops`: the command line of ebill-ops (typer + rich, like Prefect's own CLI).

    ebops config check [SITE ...]     every problem of the site files, with file, field and hint
    ebops inspect SITE                run the inspection flow now
    ebops precheck SITE               run the pre-holiday check (节前巡检) now
    ebops quality SITE                run the invoice data-quality check (票据数据质量检查) now
    ebops verify-backup SITE          run the backup-restore verification (备份恢复验证) now
    ebops yearend SITE --mode plan|execute   the year-end (技术年结); `yearend extract` (flows/cli_yearend.py)
    ebops migrate SITE --mode plan|execute --engineer NAME   服务器迁移 (flows/cli_migrate.py)
    ebops migrate-approve SITE --point P --approver NAME      record one of its approvals
    ebops schedule SITE               every scheduled duty: cron/RRULE, next runs; the pre-holiday dates (flows/cli_schedule.py)
    ebops report SITE --period 2026H2 the service report (服务报告) from the evidence store
    ebops ui                          a local Prefect server serving every deployment
    ebops evidence list|show|get|verify|url|export
    ebops portal SITE                 the evidence portal: one presigned link to a static HTML index
    ebops approve SITE PLAN_KEY --as NAME   approve a stored plan (QH 9.1.2; flows/cli_approvals.py)
    ebops approvals SITE | standing-plans SITE
    ebops sandbox up|down|status|env  the demo hospital on 127.0.0.1 (sandbox/cli.py)
    ebops demo                        sandbox up, inspection, summary, sandbox down (sandbox/cli.py)

The sandbox's commands live with the sandbox and are mounted by the `ebops` entry point
(ebops_cli.py): nothing in flows/ imports sandbox/, so a hospital's worker never depends on the
demo hospital. `python -m flows.cli` is the same command without them.

Errors a user can fix are printed as one line with a hint and exit code 2, never a traceback.
A duty whose verdict fails prints its findings and a one-line summary and exits 1; Ctrl-C stops a
run at once and exits 130 (flows/cli_interrupt.py). `--format tsv|json` for scripts (flows/cli_output.py).
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.markup import escape

from config.problems import SiteConfigError
from config.settings import check_sites
from flows.cli_output import FormatOpt, OutputFormat, emit, make_console
from flows.cli_schedule import schedule

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ebill-ops: e-bill system maintenance duties")
config_app = typer.Typer(no_args_is_help=True, help="site files")
app.add_typer(config_app, name="config")
console = make_console()
err = make_console(stderr=True)

_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "ERROR": "bold red", "SKIPPED": "magenta"}


def _mount_evidence() -> None:
    from flows.cli_evidence import evidence_app
    from flows.cli_portal import portal  # also adds `evidence export` to evidence_app

    app.add_typer(evidence_app, name="evidence", help="auditors: list, show, get, verify, url, export")
    app.command("portal")(portal)
    from flows.cli_ui import ui

    app.command("ui")(ui)
    from flows.cli_yearend import yearend_app

    yearend_app.command("run")(yearend)
    app.add_typer(yearend_app, name="yearend")
    from flows.cli_migrate import register

    register(app, _run_form, console, err)
    from flows.cli_approvals import register as register_approvals
    from flows.cli_report import register as register_report

    register_approvals(app)
    register_report(app, _run_form)


@config_app.command("check")
def config_check(sites: Optional[list[str]] = typer.Argument(None, help="site names or files; all when omitted")) -> None:
    """List every problem of the site files: file, field, what is wrong, a hint."""
    from tasks.core.alerts import validate_notify_urls

    report = check_sites(sites or None, checks=[lambda site, file: validate_notify_urls(site, file, missing_ok=True)])
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


def print_results(outcome, fmt: OutputFormat = OutputFormat.table) -> None:
    """A duty's findings as a table (or TSV/JSON), then the evidence bundle and the one-line summary."""
    from flows.common import summary_line
    from tasks.core.results import Status

    columns = ("check", "host", "target", "value", "threshold", "status", "reason")
    terminal = fmt is OutputFormat.table and console.is_terminal
    rows = [(r.title, r.host or "", r.target, "" if r.value is None else f"{r.value}{r.unit}", r.threshold,
             r.status.value, r.reason[:120] if terminal else r.reason) for r in outcome.results]
    b = outcome.bundle
    summary = summary_line(outcome, failing=lambda s: s is not Status.OK)
    data = {"site": outcome.site, "duty": outcome.duty, "verdict": outcome.verdict.value, "summary": summary,
            "evidence": {"prefix": b.prefix, "location": b.location, "report_url": b.report_url},
            "results": [r.model_dump(mode="json", exclude={"raw"}) for r in outcome.results]}
    notes = [f"evidence bundle: {b.prefix} ({b.location})"] + ([f"report: {b.report_url}"] if b.report_url else [])
    emit(fmt, console, title=f"{outcome.site} {outcome.duty}: {outcome.verdict.value}", columns=columns, rows=rows,
         data=data, notes=notes, cell_styles={"status": _STYLE})
    # The summary goes where a person reads it; with json/tsv stdout stays machine-readable.
    (console if fmt is OutputFormat.table else err).print(summary, soft_wrap=True, markup=False, highlight=False)


def _run_flow(flow_fn, label: str, fmt: OutputFormat = OutputFormat.table, before_print=None, **params) -> int:
    """Run a duty's flow now; print its findings even when its verdict failed the run (exit 1, no
    traceback: a FAIL is a finding); a crash is the engine's traceback plus one line saying where to look."""
    from flows.cli_interrupt import stop_on_ctrl_c
    from flows.common import NOT_A_CRASH, VerdictFailed

    with stop_on_ctrl_c(label, params):
        state = flow_fn(**params, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, VerdictFailed) and result.outcome is not None:
        print_results(result.outcome, fmt)
        return 1
    if isinstance(result, SiteConfigError):
        for p in result.problems:
            err.print(f"[red]config:[/] {escape(str(p))}", soft_wrap=True, highlight=False)
        return 2
    if isinstance(result, NOT_A_CRASH):  # bad input: its message names it and gives the hint
        err.print(f"[red]{label}:[/] {escape(str(result))}", soft_wrap=True, highlight=False)
        return 2
    if isinstance(result, BaseException):
        run_id = state.state_details.flow_run_id
        err.print(f"[red]{label} did not finish:[/] {type(result).__name__}: {escape(str(result))}", soft_wrap=True,
                  highlight=False)
        err.print(f"  the traceback is above; the run's full log is flow run {run_id} in the Prefect UI or "
                  f"`prefect flow-run logs {run_id}`  [dim]hint: check `ebops config check` and that the "
                  f"hospital's servers answer; if it persists, report it with the traceback[/]",
                  soft_wrap=True, highlight=False)
        return 2
    if before_print is not None:
        before_print(result)
    print_results(result, fmt)
    return 0


def _run_inspection(site: str, kind: str, fmt: OutputFormat = OutputFormat.table) -> int:
    from flows.inspection import inspection

    return _run_flow(inspection, "inspection", fmt, site=site, kind=kind)


def _run_form(flow_fn, label: str, make_params, fmt: OutputFormat = OutputFormat.table, before_print=None) -> int:
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
    return _run_flow(flow_fn, label, fmt, before_print=before_print, params=params)


def _run_precheck(site: str, holiday: str | None = None, backup: str = "run", engineer: str = "",
                  fmt: OutputFormat = OutputFormat.table) -> int:
    from flows.holiday_precheck import PrecheckParams, holiday_precheck

    return _run_form(holiday_precheck, "pre-holiday check", lambda: PrecheckParams(
        site=site, holiday_first_day=holiday, fresh_backup=backup, engineer=engineer), fmt)


@app.command()
def inspect(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            kind: str = typer.Option("adhoc", help="monthly | quarterly | adhoc"),
            fmt: OutputFormat = FormatOpt) -> None:
    """Run the inspection (巡检) of SITE now."""
    raise typer.Exit(_run_inspection(site, kind, fmt))


@app.command()
def precheck(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
             holiday: Optional[str] = typer.Option(None, help="first day off (YYYY-MM-DD); default the next ≥3-day holiday"),
             backup: str = typer.Option("run", help="fresh backup: run | plan | skip"),
             engineer: str = typer.Option("", help="engineer's name for the report"),
             fmt: OutputFormat = FormatOpt) -> None:
    """Run the pre-holiday check (节前巡检) of SITE now."""
    raise typer.Exit(_run_precheck(site, holiday, backup, engineer, fmt))


def _run_quality(site: str, start: str | None = None, end: str | None = None, rules: str | None = None,
                 engineer: str = "", fmt: OutputFormat = OutputFormat.table) -> int:
    from flows.invoice_quality import QualityParams, invoice_quality

    return _run_form(invoice_quality, "invoice quality check", lambda: QualityParams(
        site=site, start=start, end=end, engineer=engineer,
        rules=[r.strip().upper() for r in rules.split(",")] if rules else None), fmt)


@app.command()
def quality(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            start: Optional[str] = typer.Option(None, help="first issue date (YYYY-MM-DD); default yesterday"),
            end: Optional[str] = typer.Option(None, help="last issue date, inclusive; default = start"),
            rules: Optional[str] = typer.Option(None, help="only these rules, e.g. DQ06,DQ19; default all"),
            engineer: str = typer.Option("", help="engineer's name for the report"),
            fmt: OutputFormat = FormatOpt) -> None:
    """Check SITE's bills of a period against the data-quality rules DQ01-DQ22 (票据数据质量检查)."""
    raise typer.Exit(_run_quality(site, start, end, rules, engineer, fmt))


@app.command("verify-backup")
def verify_backup(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
                  mode: str = typer.Option("run", help="run | plan (list the steps and commands only)"),
                  take_backup: bool = typer.Option(False, help="take a fresh backup and verify it"),
                  backup_path: Optional[str] = typer.Option(None, help="verify this backup file (full path on the backup host)"),
                  engineer: str = typer.Option("", help="engineer's name for the record"),
                  fmt: OutputFormat = FormatOpt) -> None:
    """Verify SITE's newest backup by restoring it into a scratch database (备份恢复验证) now."""
    from flows.backup_verification import VerifyParams, backup_verification

    raise typer.Exit(_run_form(backup_verification, "backup verification", lambda: VerifyParams(
        site=site, mode=mode, take_backup=take_backup, backup_path=backup_path, engineer=engineer), fmt))


def yearend(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            mode: str = typer.Option("plan", help="plan (store the plan, await approval) | execute (run the approved plan)"),
            year: Optional[int] = typer.Option(None, help="the year to prepare (default: next year)"),
            engineer: str = typer.Option("", help="engineer's name (the plan's requester, the executor)"),
            plan_sha256: Optional[str] = typer.Option(None, "--plan", help="execute: the plan's SHA-256 (default: the newest)"),
            fmt: OutputFormat = FormatOpt) -> None:
    """Year-end (技术年结): next year's tablespace and partitions, old years compacted, behind an approval."""
    from flows.cli_yearend import plan_printer
    from flows.year_end import YearEndParams, year_end

    raise typer.Exit(_run_form(year_end, "year-end", lambda: YearEndParams(
        site=site, mode=mode, year=year, engineer=engineer, plan_sha256=plan_sha256),
        fmt, before_print=plan_printer(console, fmt)))


app.command("schedule")(schedule)


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
