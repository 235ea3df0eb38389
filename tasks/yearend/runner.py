"""Executing an approved plan step by step, with a journal that outlives the run.

Each step is first asked `already_done(step)` (read from the system itself: the catalogue, the file
server), so a second execute of the same plan runs nothing that is in place and says so per step,
and a run killed halfway is resumed by the next one. The journal (one JSON line per event, flushed
and fsync'ed before the step's statement is sent and after it returns) is what lets the record of
the run that finishes show the run that was killed: a killed run leaves no evidence bundle of its
own, but its "started" and "done" lines are there.

The approvals' runbook (tasks/approvals/runbook.run_steps) runs the steps and records each outcome
in the store; flows/year_end.execute_plan writes these notes around it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from tasks.approvals.plan import Plan, StepOutcome
from tasks.core.results import utcnow


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


def note(journal: Path, run_id: str, event: str, step_id: str | None = None, outcome: StepOutcome | None = None) -> None:
    """One journal line: a run or a step started or ended (the approvals' runbook records outcomes
    in the store; a step that was started and never ended is known only from here)."""
    entry: dict = {"run": run_id, "event": event, "at": utcnow().isoformat()}
    if step_id:
        entry["step"] = step_id
    if outcome is not None:
        entry["outcome"] = outcome.model_dump(mode="json")
    _append(journal, entry)


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
