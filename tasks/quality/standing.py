"""Standing findings of the daily quality check: defects outside the period's own rows.

DQ21 judges the stock segments the period's bills were issued from. A defective segment no bill of
the period used (an old used-up or written-off segment) is not the day's problem, but it is still
a defect: the first run that sees it counts it (FAIL for an error rule), and every later run lists
it with the day it was first seen ("open since") without counting it again, until it is gone
(then the report says so once). What was seen is kept in the site's state folder, beside the
inspection's log positions, and saved only after the run's evidence is stored: a run whose
evidence was lost reports its new findings again. Without that file (a new worker) every standing
finding counts once more.
"""
from __future__ import annotations

from pathlib import Path

from tasks.inspection.logs import load_positions, save_positions
from tasks.quality.records import RuleSummary, key_text

STATE_FILE = "quality_standing.json"

# one row of the report's 长期存在的问题 table
_STATE_ZH = {"new": "首次发现，计入本次结论", "open": "仍未消除，不计入本期结论", "gone": "已消除（本次未再发现）"}


def load_standing(path: Path) -> dict[str, dict[str, str]]:
    """{rule id: {key text: first seen (YYYY-MM-DD)}} saved by the last run; {} when there is none
    (an unreadable file too: findings are then counted once more rather than lost)."""
    data = load_positions(path)  # the same atomic JSON file as the log positions
    return {r: {str(k): str(v) for k, v in keys.items()} for r, keys in data.items() if isinstance(keys, dict)}


def save_standing(path: Path, state: dict[str, dict[str, str]]) -> None:
    save_positions(path, state)  # atomic, mode 0600


def track_standing(summaries: list[RuleSummary], known: dict[str, dict[str, str]],
                   today: str) -> tuple[dict[str, dict[str, str]], list[dict]]:
    """Mark what earlier runs saw on each summary (seen_before) and return the state to save after
    the evidence is stored and the report's rows. A rule that did not run, or could not, keeps
    what was known; one that ran keeps the keys it found now (the period's and the standing ones:
    a defect counted on a day a bill used its segment is not new the day after)."""
    state = {rule: dict(keys) for rule, keys in known.items()}
    rows: list[dict] = []
    for s in summaries:
        if not s.standing_scope or s.errors:
            continue
        before = known.get(s.rule_id, {})
        found = {key_text(k): k for k in s.failing + s.standing}
        s.seen_before = {k: before[t] for t, k in found.items() if t in before}
        state[s.rule_id] = {t: before.get(t, today) for t in sorted(found)}
        for k in s.standing:
            t = key_text(k)
            kind = "open" if t in before else "new"
            rows.append(_row(s, t, before.get(t, today), kind))
        rows += [_row(s, t, since, "gone") for t, since in sorted(before.items()) if t not in found]
    return state, rows


def _row(s: RuleSummary, key: str, since: str, kind: str) -> dict:
    status = {"new": s.status.value, "open": "WARN", "gone": "OK"}[kind]
    return {"rule_id": s.rule_id, "key": key, "open_since": since, "state": kind, "state_zh": _STATE_ZH[kind],
            "status": status}
