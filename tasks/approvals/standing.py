"""Standing approvals: the duties that run unattended on a schedule (the pre-holiday check's
fresh backup, the quarterly backup verification) render a plan that is the same at every run and
run under one recorded approval of it with a long expiry (`approval.standing_expiry_days`).
Approved the one way every plan is (`ebops approve`, tasks/approvals/gate.py).
"""
from __future__ import annotations

from config.settings import Site
from tasks.approvals.gate import ApprovalRefused, approve, require_approval
from tasks.approvals.plan import Plan
from tasks.core.reason_codes import Code
from tasks.approvals.records import ApprovalRecord, store_plan
from tasks.backup.fresh import standing_plan as fresh_backup_plan
from tasks.backup.verify.plan import standing_plan as verification_plan


def standing_plans(site: Site) -> list[Plan]:
    return [p for p in (fresh_backup_plan(site), verification_plan(site)) if p is not None]


def record_standing_approvals(site: Site, approver: str, *, requested_by: str = "", ticket: str | None = None,
                              run_id: str = "standing") -> list[ApprovalRecord]:
    """Store each standing plan of the site and record `approver`'s approval of it (the sandbox's
    `ebops sandbox up` and the tests use this for the demo site; a hospital runs `ebops approve`)."""
    out = []
    for plan in standing_plans(site):
        key = store_plan(site, plan, run_id).prefix
        out.append(approve(site, key, approver, requested_by=requested_by, ticket=ticket, via="api"))
    return out


def ensure_standing_approvals(site: Site, approver: str, *, requested_by: str = "",
                              run_id: str = "standing") -> list[ApprovalRecord]:
    """The valid approval of each standing plan, recording one only where none is valid (so a
    sandbox started again and again does not pile up plans and approvals)."""
    out = []
    for plan in standing_plans(site):
        try:
            out.append(require_approval(site, plan, requested_by))
        except ApprovalRefused:
            key = store_plan(site, plan, run_id).prefix
            out.append(approve(site, key, approver, requested_by=requested_by, via="api"))
    return out


def standing_decision(site: Site, plan: Plan, engineer: str, execute: bool,
                      run_id: str) -> tuple[ApprovalRecord | None, tuple[Code, str] | None]:
    """For a duty that runs under a standing approval (the fresh backup, the verification):
    (its valid approval, None) when `execute` and one is recorded; else (None, (code, why)), with the
    plan stored so that a second person can approve its key, and the command that does it in `why`."""
    refused = None
    if execute:
        try:
            return require_approval(site, plan, engineer), None
        except ApprovalRefused as exc:
            refused = exc
    key = store_plan(site, plan, run_id).prefix
    hint = f"方案 {key} 待第二人审批：ebops approve {site.site} {key} --as 姓名"
    if refused is None:
        return None, (Code.PLAN_ONLY, f"计划模式，未执行（{hint}）")
    return None, (refused.code, f"未获审批，未执行（{refused}；{hint}）")
