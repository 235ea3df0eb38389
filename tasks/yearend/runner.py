"""Executing an approved plan step by step, with a journal that outlives the run.

Each step is first asked `already_done(step)` (read from the system itself: the catalogue, the file
server), so a second execute of the same plan runs nothing that is in place and says so per step,
and a run killed halfway is resumed by the next one. The journal (one JSON line per event, flushed
and fsync'ed before the step's statement is sent and after it returns) is what lets the record of
the run that finishes show the run that was killed: a killed run leaves no evidence bundle of its
own, but its "started" and "done" lines are there.

This is the one seam between the year-end and the approvals' runner
(tasks/approvals/runbook.run_steps): `run_steps_journaled` has the same inputs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.core.results import utcnow

Execute = Callable[[PlanStep], StepOutcome]
AlreadyDone = Callable[[PlanStep], "str | None"]


def journal_path(state_dir: Path, plan: Plan) -> Path:
    return Path(state_dir) / "year_end" / f"{plan.sha256()}.jsonl"


def _append(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_journal(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill mid-write: the step is asked already_done again anyway
    return out


def run_steps_journaled(plan: Plan, execute: Execute, already_done: AlreadyDone, journal: Path,
                        run_id: str) -> list[StepOutcome]:
    """Every step in order: skipped as already done, or run; stops at the first failure (the steps
    after it are not run, and the caller records them so)."""
    _append(journal, {"run": run_id, "event": "run_started", "at": utcnow().isoformat()})
    outcomes: list[StepOutcome] = []
    for step in plan.steps:
        began = utcnow()
        try:
            why = already_done(step)
        except Exception as exc:  # noqa: BLE001 - cannot tell: the step fails rather than runs blind
            outcome = StepOutcome(step_id=step.id, status="failed", started_at=began, finished_at=utcnow(),
                                  output=f"无法判断是否已完成：{type(exc).__name__}: {exc}")
        else:
            if why:
                outcome = StepOutcome(step_id=step.id, status="already_done", output=why, started_at=began,
                                      finished_at=utcnow())
            else:
                _append(journal, {"run": run_id, "event": "step_started", "step": step.id, "at": began.isoformat()})
                outcome = execute(step)
        _append(journal, {"run": run_id, "event": "step_" + outcome.status, "step": step.id,
                          "at": outcome.finished_at.isoformat(), "outcome": outcome.model_dump(mode="json")})
        outcomes.append(outcome)
        if outcome.status == "failed":
            break
    _append(journal, {"run": run_id, "event": "run_finished", "at": utcnow().isoformat()})
    return outcomes


def earlier_runs(entries: list[dict], run_id: str) -> list[dict]:
    """Per earlier run of the same plan: which steps it started and finished, and whether it ended."""
    runs: dict[str, dict] = {}
    for e in entries:
        if e.get("run") == run_id:
            continue
        r = runs.setdefault(e["run"], {"run": e["run"], "started": e["at"], "done": [], "started_steps": [],
                                       "failed": [], "finished": False})
        ev = e.get("event", "")
        if ev == "step_started":
            r["started_steps"].append(e["step"])
        elif ev == "step_done":
            r["done"].append(e["step"])
        elif ev == "step_failed":
            r["failed"].append(e["step"])
        elif ev == "run_finished":
            r["finished"] = True
    for r in runs.values():
        r["interrupted_in"] = [s for s in r["started_steps"] if s not in r["done"] and s not in r["failed"]]
    return list(runs.values())


def outcome_from_journal(entries: list[dict], step_id: str) -> dict | None:
    """The facts of the run that did a step (sizes, proof), for a later run's before/after table."""
    done = [e for e in entries if e.get("step") == step_id and e.get("event") == "step_done"]
    return done[-1]["outcome"] if done else None
