"""Approving in the Prefect UI: the execute run pauses with a typed form (QH 9.1.2).

Prefect's open-source server has no user accounts, so the form is not the approval's proof of
identity: the typed name is checked against the site's `approvers:` list and the requester, the
optional confirmation code against the one sent to the site's group, and the answer is written as
the same approval record `ebops approve` writes (tasks/approvals/gate.py). An answer "deny", an
approval the gate refuses, or no answer before `approval.pause_timeout_s` ends the run as denied,
with the decision, the plan and the reason stored as an evidence bundle of the duty first.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from config.settings import Site
from tasks.approvals import confirm
from tasks.approvals.gate import ApprovalRefused, approve, require_approval
from tasks.approvals.plan import Plan
from tasks.approvals.records import PLAN_MD, ApprovalRecord, plan_files, store_plan
from tasks.core.reason_codes import Code
from tasks.evidence.bundle import BundleWriter, StoredBundle
from tasks.evidence.store import open_store

# Waiting for a form answer: a second person's decision, not a machine's. Polled this often.
POLL_INTERVAL_S = 10
# Refusals a new answer can cure; a changed or missing plan cannot be approved in the form.
_ASK_AGAIN = {Code.APPROVAL_MISSING, Code.APPROVAL_EXPIRED, Code.APPROVER_NOT_LISTED, Code.APPROVER_IS_REQUESTER}


class ApprovalForm(RunInput):
    """The form the Prefect UI shows on the paused run."""
    approver: str = Field(description="审批人姓名（须在站点 approvers 名单中，且不能是申请人）")
    decision: Literal["approve", "deny"] = Field(default="approve", description="approve 批准执行 / deny 拒绝")
    ticket: str = Field(default="", description="变更单号（可选）")
    confirm_code: str = Field(default="", description="发送到站点工作群的确认码（站点启用确认码时必填）")
    comment: str = Field(default="", description="审批意见（可选）")


def _outbox(site: Site) -> Path:
    p = Path(site.evidence.outbox)
    if not p.is_absolute() and site.source is not None:
        p = site.source.parent / p
    return p.resolve()


def store_decision(site: Site, plan: Plan, plan_key: str, decision: dict) -> StoredBundle:
    """The decision of an approval form that did not approve (denied, refused, no answer) as an
    evidence bundle of the duty: approval.json, plan.json, plan.md."""
    now = datetime.now(timezone.utc)
    w = BundleWriter(site.site, plan.duty, now.strftime("%Y-%m-%d"), str(flow_run.id or "local"), now,
                     site.evidence, _outbox(site))
    w.add_json("approval.json", {"plan_key": plan_key, "plan_sha256": plan.sha256(), "plan_title": plan.title,
                                 "requested_by": plan.requested_by, "decided_at": now.isoformat(), **decision})
    for name, text in plan_files(plan).items():
        w.add_file(name, text)
    return w.finish("FAIL", datetime.now(timezone.utc), approvals=[],
                    extra={"approval_decision": decision.get("decision"), "plan_sha256": plan.sha256()})


def form_description(site: Site, plan: Plan, plan_key: str, link: str, why: str, code_sent: bool) -> str:
    return "\n".join([
        f"## 审批：{plan.title}", "",
        f"- 站点：{site.name}（{site.site}） 职责：{plan.duty}",
        f"- 申请人：{plan.requested_by}",
        f"- 方案 SHA-256：`{plan.sha256()}`",
        f"- 步骤数：{len(plan.steps)}",
        f"- 方案全文：[plan.md]({link})（证据包 `{plan_key}`）", "",
        f"未执行的原因：{why}", "",
        "审批人须在站点 approvers 名单中且不是申请人（QH 9.1.2 多人负责制度）。"
        + ("确认码已发送到站点工作群，请填写。" if code_sent else ""),
    ])


def approve_in_ui(site: Site, plan: Plan, requested_by: str, *, plan_key: str | None = None,
                  timeout_s: int | None = None, poll_interval_s: int = POLL_INTERVAL_S) -> ApprovalRecord:
    """Inside a flow run: the valid approval of `plan`, asking for one in the Prefect UI if none
    is recorded. Raises ApprovalRefused (code approval_denied after a deny, a refused answer or no
    answer in time; plan_changed / plan_not_found at once) after storing the decision as evidence."""
    try:
        return require_approval(site, plan, requested_by, plan_key=plan_key)
    except ApprovalRefused as refused:
        if refused.code not in _ASK_AGAIN:
            raise
        why = str(refused)
    store = open_store(site.evidence)
    if plan_key is None:
        plan_key = store_plan(site, plan, str(flow_run.id or "local")).prefix
    timeout_s = timeout_s or site.approval.pause_timeout_s
    code_sent = False
    if site.approval.confirm_code:
        confirm.send_code(store, site, plan, plan_key)
        code_sent = True
    link = store.presigned(plan_key + PLAN_MD, timedelta(hours=site.evidence.link_hours))
    form = ApprovalForm.with_initial_data(description=form_description(site, plan, plan_key, link, why, code_sent),
                                          approver="")
    base = {"requested_by": requested_by, "timeout_s": timeout_s, "flow_run_id": str(flow_run.id or "")}
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=poll_interval_s)
    except FlowPauseTimeout:
        bundle = store_decision(site, plan, plan_key, {**base, "decision": "denied", "code": Code.APPROVAL_DENIED.value,
                                                       "reason": f"no answer within {timeout_s} s"})
        denied = ApprovalRefused(Code.APPROVAL_DENIED, f"{plan.duty} {site.site}: nobody answered the approval form "
                                 f"within {timeout_s} s: denied, nothing was run (evidence {bundle.prefix}) (hint: run "
                                 f"again and have an approver answer, or `ebops approve {site.site} {plan_key} --as NAME`)")
        # The server has failed the run already ("never resumed"): the log says why, in our words.
        get_run_logger().error("%s", denied)
        raise denied from None
    answered = {**base, "approver": answer.approver, "ticket": answer.ticket, "comment": answer.comment}
    if answer.decision == "deny":
        bundle = store_decision(site, plan, plan_key, {**answered, "decision": "denied",
                                                       "code": Code.APPROVAL_DENIED.value, "reason": "denied in the form"})
        raise ApprovalRefused(Code.APPROVAL_DENIED, f"{plan.duty} {site.site}: {answer.approver} denied the plan "
                              f"in the approval form; nothing was run (evidence {bundle.prefix})")
    try:
        approve(site, plan_key, answer.approver, ticket=answer.ticket or None, code=answer.confirm_code if site.approval.confirm_code else None,
                requested_by=requested_by, via="ui", store=store)
        return require_approval(site, plan, requested_by, plan_key=plan_key, store=store)
    except ApprovalRefused as refused:
        bundle = store_decision(site, plan, plan_key, {**answered, "decision": "refused", "code": refused.code.value,
                                                       "reason": str(refused)})
        raise ApprovalRefused(refused.code, f"{refused} (evidence {bundle.prefix})") from None
