"""`ebops report SITE --period 2026H2`: the service report (服务报告) from the evidence store.

Prints the duties due/done, findings, faults and availability, then where the report's bundle is
(report.html, report.md, 维护维修台账.xlsx, charts/, result.json). A bad period or site is one line
with a hint and exit 2; the report's own WARN (missing duties, no watch data) exits 0: the report
was made, its findings are its content.
"""
from __future__ import annotations

from typing import Callable, Optional

import typer

from flows.cli_output import FormatOpt, OutputFormat

# flows/cli.py's form runner (one-line errors, exit codes), handed in by register(): importing
# flows.cli here would make an import cycle (it mounts this command).
_run_form: Callable[..., int] | None = None


def register(app: typer.Typer, run_form: Callable[..., int]) -> None:
    global _run_form
    _run_form = run_form
    app.command("report")(report)


def report(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
           period: str = typer.Option(..., "--period", help="2026H2 (half-year), 2026Q4 (quarter) or 2026-11 (month); "
                                "previous-half|previous-quarter|previous-month: the last complete one"),
           as_of: Optional[str] = typer.Option(None, "--as-of", help="count up to this time (YYYY-MM-DD[THH:MM], the "
                                               "hospital's time); default the period's end or now"),
           since: Optional[str] = typer.Option(None, "--since", help="service start (YYYY-MM-DD): duties before it are not due"),
           engineer: str = typer.Option("", help="engineer's name for the report"),
           fmt: OutputFormat = FormatOpt) -> None:
    """Make the service report of SITE for a period from its evidence bundles (半年度服务报告)."""
    from flows.service_report import ReportParams, service_report

    raise typer.Exit(_run_form(service_report, "service report", lambda: ReportParams(
        site=site, period=period, as_of=as_of, since=since, engineer=engineer), fmt))
