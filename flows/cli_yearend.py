"""`ebops yearend`: the year-end (技术年结) command group.

    ebops yearend SITE --mode plan|execute     the duty (`run`, the group's default command)
    ebops yearend extract SITE CODE NUMBER     one layout file back from the archives (cli_yearend_extract.py)

plan prints every step of the plan and its SHA-256, which is what the approver approves; execute
runs the stored, approved plan (flows/year_end.py). Exit codes as every duty's: 0 passed, 1 a step
or the gate failed (after the record is stored), 2 bad input (no plan, no approval, a bad parameter).
The `run` command itself is declared in flows/cli.py (it shares the duty commands' runner).
"""
from __future__ import annotations

from typing import Callable

import typer
from typer.core import TyperGroup

from flows.cli_output import OutputFormat
from flows.cli_yearend_extract import register


class SiteFirstGroup(TyperGroup):
    """`ebops yearend demo --mode plan` reads as `ebops yearend run demo --mode plan`: a first word
    that is not one of the group's commands is the site of the default command."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


yearend_app = typer.Typer(cls=SiteFirstGroup, no_args_is_help=True,
                          help="year-end (技术年结): SITE --mode plan|execute; extract SITE CODE NUMBER")
register(yearend_app)


def plan_printer(console, fmt: OutputFormat) -> Callable:
    """Prints the plan (Markdown, as the approver reads it) and its SHA-256 from a plan run's outcome."""
    def show(outcome) -> None:
        for r in outcome.results:
            if r.check == "year_end_plan" and fmt is OutputFormat.table:
                console.print(r.raw, markup=False, highlight=False, soft_wrap=True)
                console.print(f"plan SHA-256: {r.value}", markup=False, highlight=False)
                console.print(f"PLAN_KEY: {outcome.bundle.prefix}  (a second person approves it: "
                              f"ebops approve {outcome.site} {outcome.bundle.prefix} --as NAME)",
                              markup=False, highlight=False, soft_wrap=True)
    return show
