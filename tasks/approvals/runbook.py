"""Running an approved plan step by step, resumable (迁移/年结 runbooks).

    run_steps(site, plan, approval, execute, already_done) -> list[StepOutcome]

Each step's outcome is recorded in the evidence store as soon as the step ends, as an object of
its own that is never overwritten: `_runbooks/<site>/<duty>/<plan_sha256>/<step_id>/<n>.json`
(n = the attempt). A later run of the same approved plan therefore starts after the last
completed step: steps recorded done are reported `already_done` without being touched; a step
the live system shows done (`already_done(step)`, e.g. the tablespace exists) is recorded
`already_done` and not run again. The first failure stops the runbook: the steps after it are
returned `skipped` (not recorded) and the next run resumes at the failed step.
"""
from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import quote

from config.settings import Site
from tasks.approvals.gate import ApprovalRefused
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.approvals.records import ApprovalRecord
from tasks.core.masking import mask_text
from tasks.core.reason_codes import Code
from tasks.evidence.store import Store, open_store

log = logging.getLogger("ebops.runbook")
RUNBOOKS = "_runbooks"
DONE = ("done", "already_done")
MAX_ATTEMPTS = 1000


def step_prefix(site: str, duty: str, sha: str, step_id: str) -> str:
    # quoted: a step id such as 'tablespace:ts_ebill_2027' or 'copy:/data/x' stays one path part
    return f"{RUNBOOKS}/{site}/{duty}/{sha}/{quote(step_id, safe='')}/"


def recorded_outcomes(store: Store, site: str, plan: Plan) -> dict[str, list[StepOutcome]]:
    """Every recorded attempt of every step of this plan, oldest first per step."""
    out: dict[str, list[StepOutcome]] = {}
    for step in plan.steps:
        keys = sorted(o.object_name for o in store.list(step_prefix(site, plan.duty, plan.sha256(), step.id)))
        for key in keys:
            try:
                out.setdefault(step.id, []).append(StepOutcome.model_validate(json.loads(store.get(key))))
            except ValueError:
                continue
    return out


def _record(store: Store, site: str, plan: Plan, outcome: StepOutcome, approval: ApprovalRecord) -> str:
    prefix = step_prefix(site, plan.duty, plan.sha256(), outcome.step_id)
    body = outcome.model_dump(mode="json")
    body["approval_record"] = approval.key  # which approval the step ran under
    raw = json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    n = len(list(store.list(prefix))) + 1
    for _ in range(MAX_ATTEMPTS):
        key = f"{prefix}{n:04d}.json"
        if store.put_if_absent(key, raw):
            return key
        n += 1
    raise RuntimeError(f"{prefix}: more than {MAX_ATTEMPTS} attempts of one step")


def check_approval_matches(site: Site, plan: Plan, approval: ApprovalRecord, now: datetime | None = None) -> None:
    """The approval must be of this very plan (as re-rendered now), at this site, and not expired."""
    sha = plan.sha256()
    if approval.site != site.site or approval.duty != plan.duty:
        raise ApprovalRefused(Code.PLAN_CHANGED, f"approval {approval.key} is for {approval.duty} at {approval.site}, "
                              f"not {plan.duty} at {site.site}")
    if approval.plan_sha256 != sha:
        raise ApprovalRefused(Code.PLAN_CHANGED, f"the plan re-rendered now has SHA-256 {sha[:16]}…, approval "
                              f"{approval.key} is of {approval.plan_sha256[:16]}…: something changed since it was "
                              f"approved; refused (hint: render a new plan and have it approved)")
    if approval.expired(now):
        raise ApprovalRefused(Code.APPROVAL_EXPIRED, f"approval {approval.key} expired at "
                              f"{approval.expires_at:%Y-%m-%d %H:%M} UTC (hint: have the plan approved again)")


def run_steps(site: Site, plan: Plan, approval: ApprovalRecord, execute: Callable[[PlanStep], StepOutcome],
              already_done: Callable[[PlanStep], bool], *, store: Store | None = None) -> list[StepOutcome]:
    """Run the plan's steps in order under `approval`; one StepOutcome per step of the plan.

    `execute(step)` runs one step and returns its outcome (status done or failed); an exception it
    raises is a failed outcome with the exception's text. Raises ApprovalRefused before any step
    when the approval is not of this plan or has expired."""
    check_approval_matches(site, plan, approval)
    store = store or open_store(site.evidence)
    recorded = recorded_outcomes(store, site.site, plan)
    outcomes: list[StepOutcome] = []
    stopped = False
    for step in plan.steps:
        now = datetime.now(timezone.utc)
        if stopped:
            outcomes.append(StepOutcome(step_id=step.id, status="skipped", output="an earlier step failed: not run",
                                        started_at=now, finished_at=now))
            continue
        done = next((o for o in reversed(recorded.get(step.id, [])) if o.status in DONE), None)
        if done is not None:
            outcomes.append(StepOutcome(step_id=step.id, status="already_done", started_at=now, finished_at=now,
                                        output=f"already done: recorded {done.finished_at:%Y-%m-%d %H:%M:%S} UTC",
                                        facts={"recorded_status": done.status}))
            log.info("step %s: already done (recorded)", step.id)
            continue
        if already_done(step):
            outcome = StepOutcome(step_id=step.id, status="already_done", started_at=now,
                                  finished_at=datetime.now(timezone.utc),
                                  output="already done: the system already shows the step's change")
        else:
            try:
                outcome = execute(step)
                if outcome.step_id != step.id:
                    raise ValueError(f"execute returned the outcome of {outcome.step_id!r} for step {step.id!r}")
            except Exception as exc:  # noqa: BLE001 - any failure of a step is recorded, then the runbook stops
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                outcome = StepOutcome(step_id=step.id, status="failed", output=mask_text(tb), started_at=now,
                                      finished_at=datetime.now(timezone.utc))
        _record(store, site.site, plan, outcome, approval)
        log.info("step %s: %s", step.id, outcome.status)
        outcomes.append(outcome)
        stopped = outcome.status == "failed"
    return outcomes
