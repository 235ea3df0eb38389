"""Availability of each e-bill function (MZ 一.18: 系统正常运转时间 ≥ 99 %), from the evidence.

The source is the interface watch's bundles, read by `watch_probes` alone, which expects this
shape (one bundle of duty `watch` per day, its result.json's `results`):

    {"check": "ebill_function", "target": "开票（issue）", "status": "OK" | "WARN" | "FAIL" | "ERROR",
     "finished_at": "2026-11-20T01:05:00+00:00", ...}      one record per probe

A probe that answered (OK, or WARN: answered but slowly) counts as up; FAIL and ERROR as down;
SKIPPED is not a probe. Availability = up probes / probes, per function and per day (local).
Without watch bundles the report says "no watch data" and, so the chart is not empty, falls
back to the same check's records of the inspections, labelled as samples (a handful of probes a
month measure nothing like 99 %, and the report says so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from tasks.report.collect import Bundle

CHECK = "ebill_function"
WATCH_DUTY = "watch"
GOAL_PCT = 99.0
UP = {"OK", "WARN"}
DOWN = {"FAIL", "ERROR"}


@dataclass
class Availability:
    source: str                                   # watch | inspection_samples | none
    per_function: dict[str, dict] = field(default_factory=dict)   # target -> {up, probes, pct}
    per_day: dict[str, dict] = field(default_factory=dict)        # YYYY-MM-DD -> {up, probes, pct}
    overall_pct: float | None = None

    @property
    def meets_goal(self) -> bool | None:
        return None if self.overall_pct is None else self.overall_pct >= GOAL_PCT


def watch_probes(bundles: list[Bundle]) -> list[dict]:
    """Every probe record of the watch's bundles (the shape in the module's doc)."""
    return [r for b in bundles if b.duty == WATCH_DUTY for r in b.results
            if r.get("check") == CHECK and r.get("status") in UP | DOWN]


def _pct(up: int, probes: int) -> float | None:
    return round(100.0 * up / probes, 3) if probes else None


def availability(bundles: list[Bundle], tz: str) -> Availability:
    probes, source = watch_probes(bundles), "watch"
    if not probes:
        probes = [r for b in bundles if b.duty in ("inspection", "holiday_precheck") for r in b.results
                  if r.get("check") == CHECK and r.get("status") in UP | DOWN]
        source = "inspection_samples" if probes else "none"
    out = Availability(source)
    z = ZoneInfo(tz)
    for r in probes:
        up = r["status"] in UP
        day = datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")).astimezone(z).strftime("%Y-%m-%d")
        for bucket in (out.per_function.setdefault(r.get("target", ""), {"up": 0, "probes": 0}),
                       out.per_day.setdefault(day, {"up": 0, "probes": 0})):
            bucket["up"] += up
            bucket["probes"] += 1
    for bucket in (*out.per_function.values(), *out.per_day.values()):
        bucket["pct"] = _pct(bucket["up"], bucket["probes"])
    out.per_day = dict(sorted(out.per_day.items()))
    total = sum(b["probes"] for b in out.per_function.values())
    out.overall_pct = _pct(sum(b["up"] for b in out.per_function.values()), total)
    return out
