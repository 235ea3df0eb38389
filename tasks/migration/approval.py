"""The migration's approval points behind ONE seam: `approve_point(site, plan, point, requested_by)`.

Points (多人负责制度, QH 9.1.2): plan_review (方案评审, before anything changes), downtime (the
downtime window, before the application is stopped), cutover (before the application is pointed at
the new servers), rollback (before the way back is taken).

INTERIM implementation (until tasks/approvals/gate.py `require_approval` lands on main and this
seam calls it): an approval is a create-only object in the evidence store (object lock),
`<site>/migration/_approvals/<plan sha256>/<point>.json`, written by `ebops migrate approve`.
It holds only for the plan whose SHA-256 it names, only if its approver is not the engineer who
requested the plan or runs the migration, and only until it expires.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from config.migration import APPROVAL_POINTS
from config.settings import Site
from tasks.approvals.plan import Plan
from tasks.core.results import utcnow

POINT_ZH = {"plan_review": "迁移方案评审", "downtime": "停机窗口", "cutover": "切换", "rollback": "回退"}


class ApprovalMissing(RuntimeError):
    """Not given yet: the run stops cleanly before the point and can be resumed once it is."""


class ApprovalRefused(RuntimeError):
    """Given, but it does not hold (self-approval, another plan, expired)."""


def _key(site: str, plan_sha: str, point: str) -> str:
    return f"{site}/migration/_approvals/{plan_sha}/{point}.json"


def _store(site: Site):
    from tasks.evidence.store import open_store

    return open_store(site.evidence)


def record_approval(site: Site, plan: Plan, point: str, approver: str, note: str = "",
                    valid_hours: float | None = None, now: datetime | None = None) -> dict:
    """Record one approval of `plan` at `point` (the `ebops migrate approve` command)."""
    if point not in APPROVAL_POINTS:
        raise ApprovalRefused(f"unknown approval point {point!r} (one of: {', '.join(APPROVAL_POINTS)})")
    approver = approver.strip()
    if not approver:
        raise ApprovalRefused("审批人不能为空 (hint: --approver NAME)")
    if approver == plan.requested_by.strip():
        raise ApprovalRefused(f"审批人 {approver} 即方案申请人，不能自己审批自己的方案（多人负责制度）"
                              f" (approver = requester)")
    hours = valid_hours or (site.migration.approval_valid_hours if site.migration else 72)
    now = now or utcnow()
    record = {"point": point, "point_zh": POINT_ZH[point], "plan_sha256": plan.sha256(), "site": site.site,
              "approved_by": approver, "requested_by": plan.requested_by, "note": note,
              "approved_at": now.isoformat(), "expires_at": (now + timedelta(hours=hours)).isoformat(),
              "kind": "interim migration approval (evidence store, create-only)"}
    if not _store(site).put_if_absent(_key(site.site, plan.sha256(), point),
                                      json.dumps(record, ensure_ascii=False, indent=1).encode()):
        raise ApprovalRefused(f"{POINT_ZH[point]} 已有审批记录（同一方案只审批一次），不可覆盖")
    return record


def approve_point(site: Site, plan: Plan, point: str, requested_by: str, now: datetime | None = None) -> dict:
    """THE seam: the approval of `plan` at `point` for the engineer `requested_by`, or an exception.
    Returns the approval as the manifest lists it."""
    store = _store(site)
    sha = plan.sha256()
    key = _key(site.site, sha, point)
    if not store.exists(key):
        raise ApprovalMissing(f"等待{POINT_ZH[point]}审批：ebops migrate approve {site.site} --plan {sha[:12]} "
                              f"--point {point} --approver 审批人 (approval {point} not given yet)")
    record = json.loads(store.get(key))
    if record.get("plan_sha256") != sha:
        raise ApprovalRefused(f"{POINT_ZH[point]}审批记录中的方案 SHA-256 与当前方案不符 (plan changed after approval)")
    approver = str(record.get("approved_by", "")).strip()
    if approver in (requested_by.strip(), plan.requested_by.strip()):
        raise ApprovalRefused(f"{POINT_ZH[point]}的审批人 {approver} 即申请人/执行人，不予认可 (approver = requester)")
    expires = datetime.fromisoformat(record["expires_at"])
    if (now or utcnow()) > expires:
        raise ApprovalRefused(f"{POINT_ZH[point]}审批已于 {expires:%Y-%m-%d %H:%M} UTC 过期，请重新审批 (approval expired)")
    return {"action": f"migration:{point}", "approved_by": approver, "plan_sha256": sha,
            "approved_at": record["approved_at"], "expires_at": record["expires_at"], "kind": record["kind"]}
