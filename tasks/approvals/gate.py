"""The approval gate every risky duty passes (QH 9.1.2 多人负责制度): one way to approve.

    approve(site, plan_key, approver, ...)          record an approval (CLI, Prefect UI form, tests)
    require_approval(site, plan, requested_by, ...) the valid approval of this very plan, or ApprovalRefused

A refusal carries a stable code (tasks/core/reason_codes.py) and a message with a hint:
approval_missing, approver_is_requester, approver_not_listed, approval_expired, plan_changed,
confirm_code_wrong, confirm_code_locked (5 wrong codes: a new one must be sent), confirm_code_sent (a code
went to the group: type it), plan_not_found.
The UI path (pause the run for a typed form) is tasks/approvals/ui.py.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from config.settings import Site
from tasks.approvals import confirm
from tasks.approvals.plan import Plan
from tasks.approvals.records import (ApprovalRecord, PlanNotFound, list_approvals, load_plan, new_record,
                                     write_approval)
from tasks.core.reason_codes import Code
from tasks.evidence.store import Store, open_store

STANDING_DUTIES = ("fresh_backup", "backup_verification")


class ApprovalRefused(RuntimeError):
    """No valid approval: `code` says why (a reason code), the message says what to do."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)


def _approver_problem(site: Site, plan: Plan, approver: str, requested_by: str) -> ApprovalRefused | None:
    who = approver.strip()
    if not who:
        return ApprovalRefused(Code.APPROVER_NOT_LISTED, "no approver name given (hint: --as NAME, a name "
                               f"listed under approvers: in the site file of {site.site})")
    if who in {plan.requested_by.strip(), requested_by.strip()} - {""}:
        return ApprovalRefused(Code.APPROVER_IS_REQUESTER, f"{who} requested this run and cannot approve it: "
                               f"QH 9.1.2 requires a second person (hint: ask another approver of site {site.site}: "
                               f"{', '.join(a.name for a in site.approvers if a.name != who) or 'none listed'})")
    if who not in {a.name for a in site.approvers}:
        return ApprovalRefused(Code.APPROVER_NOT_LISTED, f"{who} is not an approver of site {site.site} "
                               f"(hint: the approvers are {', '.join(a.name for a in site.approvers) or 'none'}; "
                               f"add the person under approvers: in {site.source or 'the site file'})")
    return None


def default_expiry(site: Site, duty: str) -> timedelta:
    """A standing duty's approval lasts `standing_expiry_days`, a one-off plan's `expiry_hours`."""
    if duty in STANDING_DUTIES:
        return timedelta(days=site.approval.standing_expiry_days)
    return timedelta(hours=site.approval.expiry_hours)


def approve(site: Site, plan_key: str, approver: str, *, role: str | None = None, ticket: str | None = None,
            code: str | None = None, expires_hours: float | None = None, requested_by: str = "",
            via: str = "cli", store: Store | None = None, now: datetime | None = None) -> ApprovalRecord:
    """Record `approver`'s approval of the plan stored under `plan_key`; the refusals are checked
    now (and again when the plan is executed). With `approval.confirm_code` on and no `code`, a code
    is sent to the site's group and ApprovalRefused(confirm_code_sent) asks to repeat with it."""
    store = store or open_store(site.evidence)
    try:
        plan = load_plan(store, plan_key)
    except PlanNotFound as exc:
        raise ApprovalRefused(Code.PLAN_NOT_FOUND, str(exc)) from None
    if plan.site != site.site:
        raise ApprovalRefused(Code.PLAN_NOT_FOUND, f"{plan_key} is a plan of site {plan.site}, not {site.site} "
                              f"(hint: ebops approve {plan.site} {plan_key} ...)")
    problem = _approver_problem(site, plan, approver, requested_by)
    if problem:
        raise problem
    confirmed = False
    if site.approval.confirm_code:
        if code is None:  # (an empty code typed in the form is a wrong code, not a request for one)
            until = confirm.send_code(store, site, plan, plan_key, now)
            raise ApprovalRefused(Code.CONFIRM_CODE_SENT, f"a confirmation code was sent to the group of site "
                                  f"{site.site} (valid until {until:%H:%M} UTC) (hint: repeat with --code CODE)")
        result = confirm.check_code(store, site, plan, code, approver.strip(), now)
        if result == "locked":
            raise ApprovalRefused(Code.CONFIRM_CODE_LOCKED, f"{confirm.MAX_WRONG} wrong confirmation codes were typed "
                                  "for this plan: every code sent so far is void (hint: repeat without --code: a new "
                                  "code is sent to the site's group)")
        if result != "ok":
            raise ApprovalRefused(Code.CONFIRM_CODE_WRONG, "the confirmation code is wrong or expired (hint: "
                                  "type the newest code sent to the site's group; without --code a new one is sent)")
        confirmed = True
    member = next(a for a in site.approvers if a.name == approver.strip())
    expires = timedelta(hours=expires_hours) if expires_hours else default_expiry(site, plan.duty)
    if expires <= timedelta(0):
        raise ApprovalRefused(Code.APPROVAL_EXPIRED, "--expires-hours must be more than 0")
    rec = new_record(site, plan, plan_key.rstrip("/") + "/", approver.strip(), role or member.role, ticket=ticket,
                     via=via, expires=expires, confirmed=confirmed, now=now)
    return write_approval(store, rec)


def require_approval(site: Site, plan: Plan, requested_by: str, *, plan_key: str | None = None,
                     store: Store | None = None, now: datetime | None = None) -> ApprovalRecord:
    """The newest valid approval of exactly this plan (as re-rendered now), or ApprovalRefused.

    `requested_by` is who asked for this run (its engineer): never its approver. `plan_key`, when
    the run names the plan it executes, must hold a plan with the same SHA-256: anything that
    changed since (a fact, a statement) refuses the run and asks for a new plan."""
    store = store or open_store(site.evidence)
    now = now or datetime.now(timezone.utc)
    sha = plan.sha256()
    if plan_key:
        try:
            approved = load_plan(store, plan_key)
        except PlanNotFound as exc:
            raise ApprovalRefused(Code.PLAN_NOT_FOUND, str(exc)) from None
        if approved.sha256() != sha:
            raise ApprovalRefused(Code.PLAN_CHANGED, _changed(approved, plan, plan_key))
    records = list_approvals(store, site.site, plan.duty, sha)
    if not records:
        others = [r for r in list_approvals(store, site.site, plan.duty) if not r.expired(now)]
        if others:
            newest = others[-1]
            raise ApprovalRefused(Code.PLAN_CHANGED, f"{plan.duty} {site.site}: the plan re-rendered now has "
                                  f"SHA-256 {sha[:16]}…, the approved plan {newest.plan_key} has "
                                  f"{newest.plan_sha256[:16]}…: something changed since it was approved "
                                  f"(hint: render a new plan and have it approved)")
        raise ApprovalRefused(Code.APPROVAL_MISSING, f"{plan.duty} {site.site}: no approval of plan "
                              f"{sha[:16]}… is recorded (hint: a second person runs "
                              f"`ebops approve {site.site} PLAN_KEY --as NAME`, or answers the run's form in the Prefect UI)")
    refusal: ApprovalRefused | None = None
    for rec in reversed(records):
        problem = _approver_problem(site, plan, rec.approver, requested_by)
        if problem is None and rec.expired(now):
            problem = ApprovalRefused(Code.APPROVAL_EXPIRED, f"the approval by {rec.approver} ({rec.key}) expired "
                                      f"at {rec.expires_at:%Y-%m-%d %H:%M} UTC (hint: have the plan approved again)")
        if problem is None:
            return rec
        refusal = refusal or problem
    raise refusal


def _changed(approved: Plan, now: Plan, plan_key: str) -> str:
    """Which parts differ, so the engineer sees what moved (a fact, a step)."""
    what = [k for k in ("title", "requested_by", "site", "duty") if getattr(approved, k) != getattr(now, k)]
    facts = sorted(k for k in set(approved.facts) | set(now.facts) if approved.facts.get(k) != now.facts.get(k))
    what += [f"fact {k}" for k in facts[:5]]
    a, b = {s.id: s for s in approved.steps}, {s.id: s for s in now.steps}
    what += [f"step {i}" for i in sorted(set(a) | set(b)) if a.get(i) != b.get(i)][:5]
    if [s.id for s in approved.steps] != [s.id for s in now.steps] and not any(w.startswith("step") for w in what):
        what.append("step order")
    return (f"the plan re-rendered now (SHA-256 {now.sha256()[:16]}…) differs from the approved plan {plan_key} "
            f"({approved.sha256()[:16]}…): {', '.join(what) or 'content'} changed; refused "
            f"(hint: run the plan again and have the new plan approved)")
