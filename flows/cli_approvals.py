"""`ebops approve | approvals | standing-plans`: the second person's side of a risky duty (QH 9.1.2).

    ebops approve SITE PLAN_KEY --as NAME [--role R] [--ticket T] [--code C] [--expires-hours H]
    ebops approvals SITE [--duty D]          the approval records in the evidence store
    ebops standing-plans SITE                store the standing plans (fresh backup, verification), print their keys

A refusal (the approver requested the plan, is not in the site's approvers list, the plan is not
found, a wrong confirmation code) is one line with a hint and exit code 2; with the site's
confirmation code on, `approve` without --code sends a code to the site's group and exits 3.
"""
from __future__ import annotations

from typing import Optional

import typer

from flows.cli_evidence import _friendly, site_or_exit
from flows.cli_output import FormatOpt, OutputFormat, emit, make_console

console = make_console()
err = make_console(stderr=True)
EXIT_CODE_SENT = 3




def _refused(exc) -> None:
    from tasks.core.reason_codes import Code

    message, _, hint = str(exc).partition(" (hint: ")
    err.print(f"[bold red]refused ({exc.code.value}):[/] {message}" + (f"  [dim]hint: {hint.rstrip(')')}[/]" if hint else ""),
              soft_wrap=True)
    raise typer.Exit(EXIT_CODE_SENT if exc.code is Code.CONFIRM_CODE_SENT else 2)


@_friendly
def approve_cmd(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
                plan_key: str = typer.Argument(..., help="the plan's evidence prefix, as the plan run printed it"),
                approver: str = typer.Option(..., "--as", help="your name, as listed under approvers: in the site file"),
                role: Optional[str] = typer.Option(None, "--role", help="default: your role in the approvers list"),
                ticket: Optional[str] = typer.Option(None, "--ticket", help="the hospital's change ticket (变更单号)"),
                code: Optional[str] = typer.Option(None, "--code", help="the confirmation code sent to the site's group"),
                expires_hours: Optional[float] = typer.Option(None, "--expires-hours", help=(
                    "default: approval.expiry_hours, or approval.standing_expiry_days for a standing plan")),
                fmt: OutputFormat = FormatOpt) -> None:
    """Approve a stored plan: an approval record in the evidence store (never overwritten)."""
    from tasks.approvals.gate import ApprovalRefused, approve

    cfg = site_or_exit(site)
    try:
        rec = approve(cfg, plan_key, approver, role=role, ticket=ticket, code=code, expires_hours=expires_hours)
    except ApprovalRefused as exc:
        _refused(exc)
    _emit(fmt, [rec], f"approval recorded: {rec.key}")


def _emit(fmt: OutputFormat, records: list, title: str) -> None:
    columns = ("duty", "plan sha256", "approver", "role", "approved", "expires", "ticket", "via", "plan key", "record")
    rows = [(r.duty, r.plan_sha256, r.approver, r.role, f"{r.approved_at:%Y-%m-%d %H:%M}Z", f"{r.expires_at:%Y-%m-%d %H:%M}Z",
             r.ticket or "", r.via, r.plan_key, r.key) for r in records]
    emit(fmt, console, title=title, columns=columns, rows=rows, data=[r.model_dump(mode="json") for r in records],
         no_wrap=("plan key",))


@_friendly
def approvals_cmd(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
                  duty: Optional[str] = typer.Option(None, "--duty", help="only this duty (fresh_backup, year_end ...)"),
                  fmt: OutputFormat = FormatOpt) -> None:
    """The approval records of a site, oldest first (expired ones included: they are the record)."""
    from tasks.approvals.records import list_approvals
    from tasks.evidence.store import open_store

    cfg = site_or_exit(site)
    records = list_approvals(open_store(cfg.evidence), cfg.site, duty)
    _emit(fmt, records, f"approvals of {cfg.site} ({len(records)})")


@_friendly
def standing_plans_cmd(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
                       fmt: OutputFormat = FormatOpt) -> None:
    """Store the site's standing plans (fresh backup, backup verification) and print their keys,
    for a second person to read (plan.md) and approve with `ebops approve`."""
    from tasks.approvals.gate import ApprovalRefused, require_approval
    from tasks.approvals.records import store_plan
    from tasks.approvals.standing import standing_plans

    cfg = site_or_exit(site)
    rows = []
    for plan in standing_plans(cfg):
        try:
            state = f"approved by {require_approval(cfg, plan, '').approver}"
        except ApprovalRefused as exc:
            state = exc.code.value
        rows.append((plan.duty, plan.sha256(), len(plan.steps), state, store_plan(cfg, plan, "cli").prefix))
    emit(fmt, console, title=f"standing plans of {cfg.site}", columns=("duty", "plan sha256", "steps", "approval", "plan key"),
         rows=rows, data=[dict(zip(("duty", "plan_sha256", "steps", "approval", "plan_key"), r)) for r in rows],
         no_wrap=("plan key",), notes=[f"approve: ebops approve {cfg.site} PLAN_KEY --as NAME"])


def register(app: typer.Typer) -> None:
    app.command("approve")(approve_cmd)
    app.command("approvals")(approvals_cmd)
    app.command("standing-plans")(standing_plans_cmd)
