"""A plan: every statement and command a risky duty would run, in order, with what each is expected
to change. Its SHA-256 over a canonical form is its identity: an approval names that SHA-256, and a
plan re-rendered at execution time with another SHA-256 is refused (QH 9.1.2 多人负责制度).

The same model serves every duty that changes a hospital's system (year-end, migration, the
pre-holiday fresh backup, the backup verification's scratch restore), so there is one way to approve.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

StepKind = Literal["sql", "command", "check", "file"]
StepStatus = Literal["done", "already_done", "failed", "skipped"]


class PlanStep(BaseModel):
    """One statement or command. `id` is stable across re-renders (e.g. 'tablespace:ts_ebill_2027'),
    so a resumed run can tell which steps are already done."""
    id: str
    kind: StepKind
    target: str                 # where it runs: 'db', a host name, 'files1:/data/ebill/layout' ...
    text: str                   # the exact SQL or shell command (secrets only by reference)
    expect: str                 # what it is expected to change, in the hospital's terms (Chinese)
    phase: str = ""             # a runbook's phase name (migration: preflight, freeze, ...), optional


class Plan(BaseModel):
    """What a duty would do. `facts` holds what the plan was derived from (catalogue rows, sizes) so
    a reviewer sees why each step is there; facts are part of the SHA-256: if they change, re-plan."""
    site: str
    duty: str                   # 'year_end', 'migration', 'fresh_backup', 'backup_verification'
    title: str                  # e.g. '2027年技术年结方案'
    requested_by: str           # the engineer who asked for the plan; never its approver
    steps: list[PlanStep]
    facts: dict[str, Any] = Field(default_factory=dict)

    def sha256(self) -> str:
        return plan_sha256(self)


def canonical_json(plan: Plan) -> str:
    """The bytes the SHA-256 is taken over: sorted keys, no whitespace variance, UTF-8 text kept."""
    return json.dumps(plan.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def plan_sha256(plan: Plan) -> str:
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()


class StepOutcome(BaseModel):
    """What running one step did, for the record (技术年结记录, 迁移记录)."""
    step_id: str
    status: StepStatus
    output: str = ""            # masked output of the statement or command
    started_at: datetime
    finished_at: datetime
    facts: dict[str, Any] = Field(default_factory=dict)   # e.g. sizes before/after, row counts

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def render_markdown(plan: Plan) -> str:
    """The plan as a reviewer reads it (in the evidence bundle and in the approval form)."""
    lines = [f"# {plan.title}", "", f"- 站点：{plan.site}", f"- 职责：{plan.duty}",
             f"- 申请人：{plan.requested_by}", f"- 方案 SHA-256：`{plan.sha256()}`", "",
             "| # | 步骤 | 位置 | 预期变更 |", "|---|---|---|---|"]
    for i, s in enumerate(plan.steps, 1):
        lines.append(f"| {i} | `{s.id}` | {s.target} | {s.expect} |")
    lines.append("")
    for i, s in enumerate(plan.steps, 1):
        lang = "sql" if s.kind == "sql" else "sh"
        lines += [f"## {i}. {s.id}", "", f"```{lang}", s.text, "```", ""]
    return "\n".join(lines)
