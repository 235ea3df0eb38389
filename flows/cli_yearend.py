"""`ebops yearend SITE --mode plan|execute`: the year-end (技术年结) from the command line.

plan prints every step of the plan and its SHA-256 (what the approver approves) and stores it;
execute runs the stored, approved plan (flows/year_end.py). Exit codes as every duty's: 0 passed,
1 a step or the gate failed (after the record is stored), 2 bad input (no plan, no approval).
"""
from __future__ import annotations

from typing import Optional

import typer

from flows.cli_output import FormatOpt, OutputFormat


def yearend(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
            mode: str = typer.Option("plan", help="plan (store the plan, await approval) | execute (run the approved plan)"),
            year: Optional[int] = typer.Option(None, help="the year to prepare (default: next year)"),
            engineer: str = typer.Option("", help="engineer's name (the plan's requester, the executor)"),
            plan_sha256: Optional[str] = typer.Option(None, "--plan", help="execute: the plan's SHA-256 (default: the newest)"),
            approved_by: Optional[str] = typer.Option(None, help="execute: the approver (a second person)"),
            fmt: OutputFormat = FormatOpt) -> None:
    """Year-end (技术年结): next year's tablespace and partitions, old years compressed, behind an approval."""
    from flows import cli
    from flows.year_end import YearEndParams, year_end

    def show_plan(outcome) -> None:
        for r in outcome.results:
            if r.check == "year_end_plan" and fmt is OutputFormat.table:
                cli.console.print(r.raw, markup=False, highlight=False, soft_wrap=True)
                cli.console.print(f"plan SHA-256: {r.value}", markup=False, highlight=False)

    raise typer.Exit(cli._run_form(year_end, "year-end", lambda: YearEndParams(
        site=site, mode=mode, year=year, engineer=engineer, plan_sha256=plan_sha256, approved_by=approved_by),
        fmt, before_print=show_plan))
