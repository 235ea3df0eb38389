"""`ebops yearend SITE --mode plan|execute` (the command is declared in flows/cli.py): what it prints
besides every duty's table. plan prints every step of the plan and its SHA-256, which is what the
approver approves; execute runs the stored, approved plan (flows/year_end.py). Exit codes as every
duty's: 0 passed, 1 a step or the gate failed (after the record is stored), 2 bad input (no plan, no
approval, a bad parameter)."""
from __future__ import annotations

from typing import Callable

from flows.cli_output import OutputFormat


def plan_printer(console, fmt: OutputFormat) -> Callable:
    """Prints the plan (Markdown, as the approver reads it) and its SHA-256 from a plan run's outcome."""
    def show(outcome) -> None:
        for r in outcome.results:
            if r.check == "year_end_plan" and fmt is OutputFormat.table:
                console.print(r.raw, markup=False, highlight=False, soft_wrap=True)
                console.print(f"plan SHA-256: {r.value}", markup=False, highlight=False)
    return show
