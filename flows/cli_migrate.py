"""`ebops migrate SITE --mode plan|execute [--pause-after P] [--resume RUN] --engineer NAME` and
`ebops migrate-approve SITE --plan SHA --point POINT --approver NAME` (服务器迁移).

`migrate-approve` finds the point's plan (tasks/migration/approval.py) and records the approval
through the gate (tasks/approvals/gate.py approve), as `ebops approve SITE PLAN_KEY --as NAME` does.
"""
from __future__ import annotations

from typing import Optional

import typer

from flows.cli_output import FormatOpt, OutputFormat

# Given by flows/cli.py at registration (it imports this module, not the reverse: no cycle).
_HOOKS: dict = {}


def migrate(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml, with a migration: section)"),
            mode: str = typer.Option("plan", help="plan (preflight + 迁移方案) | execute"),
            pause_after: Optional[str] = typer.Option(None, help="stop cleanly after this phase "
                                                      "(preflight, plan, freeze, backup, transfer, verify, cutover)"),
            resume: Optional[str] = typer.Option(None, help="continue this earlier run (its run id)"),
            engineer: str = typer.Option(..., help="the engineer who runs it (never its approver)"),
            fmt: OutputFormat = FormatOpt) -> None:
    """Move SITE onto its new servers (服务器迁移), phase by phase, behind three approvals."""
    from flows.migration import MigrateParams, migration

    code = _HOOKS["run_form"](migration, "migration", lambda: MigrateParams(
        site=site, mode=mode, pause_after=pause_after, resume=resume, engineer=engineer), fmt)
    if code == 0 and mode == "plan" and fmt is OutputFormat.table:
        _print_plan(site)
    raise typer.Exit(code)


def _print_plan(site: str) -> None:
    """The 迁移方案 just stored, as the 方案评审 reads it, and how to approve it."""
    from rich.markdown import Markdown

    from config.settings import load_site
    from tasks.evidence.store import open_store
    from tasks.migration.plan_doc import load_plan, render_plan

    console = _HOOKS["console"]
    cfg = load_site(site)
    plan = load_plan(open_store(cfg.evidence), cfg)
    if plan is None:
        return
    console.rule("迁移方案 (stored in the evidence store)")
    console.print(Markdown(render_plan(plan)))
    from tasks.migration.approval import point_keys

    for point, key in point_keys(plan, open_store(cfg.evidence)).items():
        console.print(f"approval {point}: ebops approve {site} {key} --as NAME   "
                      f"(or: ebops migrate-approve {site} --point {point} --approver NAME)")


def migrate_approve(site: str = typer.Argument(..., help="site name"),
                    plan: Optional[str] = typer.Option(None, help="the plan's SHA-256 (a prefix will do; "
                                                       "default: the newest plan)"),
                    point: str = typer.Option(..., help="plan_review | downtime | cutover | rollback"),
                    approver: str = typer.Option(..., help="who approves (not the plan's requester)"),
                    note: str = typer.Option("", help="e.g. the downtime window agreed with the hospital")) -> None:
    """Record one approval of SITE's migration plan (方案评审, 停机窗口, 切换, 回退)."""
    from config.settings import load_site
    from tasks.evidence.store import open_store
    from tasks.migration.approval import ApprovalRefused, record_approval
    from tasks.migration.plan_doc import load_plan

    console, err = _HOOKS["console"], _HOOKS["err"]
    cfg = load_site(site)
    found = load_plan(open_store(cfg.evidence), cfg, plan)
    if found is None:
        err.print(f"[red]migrate-approve:[/] no stored migration plan of {site}" + (f" with SHA-256 {plan}…" if plan else "")
                  + " (hint: ebops migrate SITE --mode plan first)")
        raise typer.Exit(2)
    try:
        rec = record_approval(cfg, found, point, approver, note)
    except ApprovalRefused as exc:
        err.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"approved {rec['point_zh']}（{point}）of plan {rec['plan_sha256']} by {rec['approved_by']} "
                  f"({rec['key']}), valid until {rec['expires_at']}")


def register(app: typer.Typer, run_form, console, err) -> None:
    _HOOKS.update(run_form=run_form, console=console, err=err)
    app.command("migrate")(migrate)
    app.command("migrate-approve")(migrate_approve)
