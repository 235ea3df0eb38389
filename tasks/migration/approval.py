"""The migration's approval points behind ONE seam: `approve_point(site, plan, point, requested_by)`,
which asks the approval gate every risky duty passes (tasks/approvals/gate.py `require_approval`).

Points (多人负责制度, QH 9.1.2): plan_review (方案评审, before anything changes), downtime (the
downtime window, before the application is stopped), cutover (before the application is pointed at
the new servers), rollback (before the way back is taken). Each point is a plan of its own for the
gate (duty `migration_<point>`): the steps that point opens, and in its facts the SHA-256 of the
whole 迁移方案 — so an approval holds for exactly that 迁移方案, and any change to it (a step, a
fact) is refused by the gate as plan_changed. The point plans are stored when the 迁移方案 is made;
their PLAN_KEYs are what `ebops approve SITE PLAN_KEY --as NAME` (or `ebops migrate-approve`) takes.
The gate's refusals keep their codes: approval_missing (the run stops cleanly before the point),
approver_is_requester, approver_not_listed, approval_expired, plan_changed.
"""
from __future__ import annotations

import json

from config.migration import APPROVAL_POINTS
from config.settings import Site
from tasks.approvals import gate, records
from tasks.approvals.plan import Plan
from tasks.core.reason_codes import Code

POINT_ZH = {"plan_review": "迁移方案评审", "downtime": "停机窗口", "cutover": "切换", "rollback": "回退"}
POINT_PHASES = {"plan_review": None, "downtime": ("freeze", "backup", "transfer", "verify"),
                "cutover": ("cutover", "smoke"), "rollback": ("rollback",)}


class ApprovalMissing(RuntimeError):
    """Not given yet: the run stops cleanly before the point and can be resumed once it is."""


class ApprovalRefused(RuntimeError):
    """Given, but it does not hold (self-approval, not an approver, another plan, expired)."""

    def __init__(self, message: str, code: Code = Code.APPROVAL_REFUSED):
        super().__init__(message)
        self.code = Code(code)


def point_plan(plan: Plan, point: str) -> Plan:
    """What the approver of `point` approves: the steps it opens, bound to the whole plan's SHA-256."""
    phases = POINT_PHASES[point]
    steps = [s for s in plan.steps if phases is None or s.phase in phases]
    return Plan(site=plan.site, duty=f"migration_{point}", title=f"{plan.title}：{POINT_ZH[point]}审批",
                requested_by=plan.requested_by, steps=steps,
                facts={"migration_plan_sha256": plan.sha256(), "point": point, "plan_id": plan.facts.get("plan_id"),
                       "estimate_s": plan.facts.get("estimate_s"), "people": plan.facts.get("people")})


def _index_key(plan: Plan) -> str:
    return f"{plan.site}/migration/_plans/{plan.facts.get('plan_id')}_{plan.sha256()}.points.json"


def store_point_plans(site: Site, plan: Plan, run_id: str, store) -> dict[str, str]:
    """Store the point plans (tasks/approvals/records.store_plan) once; {point: PLAN_KEY}."""
    key = _index_key(plan)
    if store.exists(key):
        return json.loads(store.get(key))
    keys = {p: records.store_plan(site, point_plan(plan, p), run_id).prefix for p in APPROVAL_POINTS}
    store.put_if_absent(key, json.dumps(keys, ensure_ascii=False, indent=1).encode())
    return keys


def point_keys(plan: Plan, store) -> dict[str, str]:
    key = _index_key(plan)
    return json.loads(store.get(key)) if store.exists(key) else {}


def _store(site: Site):
    from tasks.evidence.store import open_store

    return open_store(site.evidence)


def record_approval(site: Site, plan: Plan, point: str, approver: str, note: str = "", store=None) -> dict:
    """Record `approver`'s approval of `plan` at `point` through the gate (`ebops migrate-approve`)."""
    if point not in APPROVAL_POINTS:
        raise ApprovalRefused(f"unknown approval point {point!r} (one of: {', '.join(APPROVAL_POINTS)})")
    store = store or _store(site)
    key = point_keys(plan, store).get(point)
    if key is None:
        raise ApprovalRefused(f"方案 {plan.sha256()[:12]}… 没有{POINT_ZH[point]}的审批单 (hint: ebops migrate "
                              f"{site.site} --mode plan first)", Code.PLAN_NOT_FOUND)
    try:
        rec = gate.approve(site, key, approver, ticket=note or None, store=store)
    except gate.ApprovalRefused as exc:
        raise ApprovalRefused(str(exc), exc.code) from None
    return {"point": point, "point_zh": POINT_ZH[point], "plan_sha256": plan.sha256(), "plan_key": key,
            "approved_by": rec.approver, "expires_at": rec.expires_at.isoformat(), "key": rec.key}


def approve_point(site: Site, plan: Plan, point: str, requested_by: str, store=None, now=None) -> dict:
    """THE seam: the approval of `plan` at `point` for the engineer `requested_by`, from the gate,
    or ApprovalMissing (pause) / ApprovalRefused (with the gate's code). Returns the manifest's entry."""
    store = store or _store(site)
    pp = point_plan(plan, point)
    key = point_keys(plan, store).get(point)
    try:
        rec = gate.require_approval(site, pp, requested_by, plan_key=key, store=store, now=now)
    except gate.ApprovalRefused as exc:
        if exc.code is Code.APPROVAL_MISSING:
            raise ApprovalMissing(f"等待{POINT_ZH[point]}审批：ebops approve {site.site} {key or '(PLAN_KEY)'} --as 审批人"
                                  f"（或 ebops migrate-approve {site.site} --point {point} --approver 审批人） ({exc})") from None
        raise ApprovalRefused(f"{POINT_ZH[point]}审批不成立：{exc}", exc.code) from None
    return {"action": f"migration:{point}", "approved_by": rec.approver, "role": rec.role, "plan_sha256": plan.sha256(),
            "plan_key": rec.plan_key, "approved_at": rec.approved_at.isoformat(), "expires_at": rec.expires_at.isoformat(),
            "record": rec.key, "kind": "tasks/approvals/gate.py require_approval"}
