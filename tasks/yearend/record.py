"""The 技术年结记录: step records for the verdict and the form's context (plan, approvals, each statement
with its output and duration, the before/after table, earlier runs of the same plan)."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from tasks.approvals.plan import Plan, StepOutcome
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status
from tasks.yearend.runner import earlier_runs, outcome_from_journal

STATUS_ZH = {"done": "已执行", "already_done": "已完成（无需执行）", "failed": "失败", "skipped": "未执行"}


def step_results(site: str, plan: Plan, outcomes: list[StepOutcome], why_not_run: str | None = None) -> list[CheckResult]:
    """One record per planned step: OK when done or already done, FAIL when it failed (the proof
    included), SKIPPED (not passed) for the steps after a failure or behind a refused gate."""
    by_id = {o.step_id: o for o in outcomes}
    out = []
    for s in plan.steps:
        o = by_id.get(s.id)
        base = dict(check="year_end_step", title=f"年结步骤 {s.id}", site=site, host=None if s.target == "db" else s.target,
                    target=s.id, threshold=s.expect, raw=(o.output if o else s.text))
        if o is None or o.status == "skipped":
            out.append(CheckResult(**base, status=Status.SKIPPED, code=Code.EARLIER_STEP_FAILED,
                                   reason=why_not_run or "前面的步骤未成功，本步骤未执行"))
        elif o.status == "failed":
            code = Code.PROOF_MISMATCH if "指纹" in o.output else Code.STEP_FAILED
            out.append(CheckResult(**base, status=Status.FAIL, code=code, started_at=o.started_at,
                                   finished_at=o.finished_at, value="失败", reason=o.output.splitlines()[-1][:500]))
        else:
            code = Code.ALREADY_DONE if o.status == "already_done" else Code.OK
            reason = o.output if o.status == "already_done" else f"已执行，用时 {o.duration_s:.2f} 秒"
            out.append(CheckResult(**base, status=Status.OK, code=code, started_at=o.started_at,
                                   finished_at=o.finished_at, value=STATUS_ZH[o.status], reason=reason))
    return out


def _mib(b) -> str:
    return "—" if b is None else f"{b / 1048576:.2f}"


def before_after(plan: Plan, outcomes: list[StepOutcome], journal: list[dict]) -> list[dict]:
    """Per compacted partition: sizes, rows and fingerprints at plan time, before and after, from this
    run's outcome or, for a step an earlier run did, from the journal."""
    rows = []
    by_id = {o.step_id: o for o in outcomes}
    for s in plan.steps:
        if not s.id.startswith("compact:"):
            continue
        o = by_id.get(s.id)
        facts = (o.facts if o is not None and o.status in ("done", "failed") else
                 (outcome_from_journal(journal, s.id) or {}).get("facts", {}))
        at_plan = plan.facts.get("proof_at_plan", {}).get(s.id) or {}
        before, after = facts.get("before") or {}, facts.get("after") or {}
        equal = bool(after) and at_plan.get("fingerprint") == before.get("fingerprint") == after.get("fingerprint") \
            and at_plan.get("rows") == before.get("rows") == after.get("rows")
        rows.append({"partition": s.id.split(":", 1)[1], "rows_plan": at_plan.get("rows"), "rows_before": before.get("rows"),
                     "rows_after": after.get("rows"), "fp_before": (before.get("fingerprint") or "")[:16],
                     "fp_after": (after.get("fingerprint") or "")[:16], "mib_before": _mib(before.get("bytes", at_plan.get("bytes"))),
                     "mib_after": _mib(after.get("bytes")), "equal": equal,
                     "bytes_before": before.get("bytes", at_plan.get("bytes")), "bytes_after": after.get("bytes"),
                     "done_by": "本次运行" if o is not None and o.status == "done" else ("此前运行" if facts else "—")})
    return rows


def statements_table(plan: Plan, outcomes: list[StepOutcome], tz: str) -> list[dict]:
    by_id = {o.step_id: o for o in outcomes}
    rows = []
    for i, s in enumerate(plan.steps, 1):
        o = by_id.get(s.id)
        rows.append({"no": i, "id": s.id, "target": s.target, "expect": s.expect, "text": s.text,
                     "status_zh": STATUS_ZH[o.status] if o else "未执行",
                     "started": o.started_at.astimezone(ZoneInfo(tz)).strftime("%H:%M:%S") if o else "—",
                     "seconds": f"{o.duration_s:.2f}" if o else "—", "output": (o.output if o else "")[:4000]})
    return rows


def plan_context(plan: Plan, mode: str, tz: str, *, outcomes: list[StepOutcome] = (), journal: list[dict] = (),
                 run_id: str = "", approvals: list[dict] = (), plan_prefix: str = "") -> dict:
    table = before_after(plan, list(outcomes), list(journal))
    total_before = sum(r["bytes_before"] or 0 for r in table)
    total_after = sum(r["bytes_after"] or 0 for r in table if r["bytes_after"] is not None)
    return {
        "mode": mode, "mode_zh": "方案（计划模式，未执行任何变更）" if mode == "plan" else "执行",
        "plan": {"title": plan.title, "sha256": plan.sha256(), "requested_by": plan.requested_by,
                 "steps": len(plan.steps), "prefix": plan_prefix},
        "approvals": list(approvals), "statements": statements_table(plan, list(outcomes), tz),
        "before_after": table, "all_equal": bool(table) and all(r["equal"] for r in table),
        "sizes": {"before_mib": _mib(total_before), "after_mib": _mib(total_after) if total_after else "—"},
        "earlier_runs": earlier_runs(list(journal), run_id),
        "catalogue_tables": [t["table"] for t in plan.facts.get("catalogue", {}).get("tables", [])],
        "catalogue_others": plan.facts.get("catalogue", {}).get("others", []),
        "compress_years_up_to": plan.facts.get("compress_years_up_to"),
        "n_suggest": "六", "n_sign": "七",  # the form's own sections come before (三 to 五)
    }
