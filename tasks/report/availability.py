"""Availability of each e-bill function (MZ 一.18: 系统正常运转时间 ≥ 99 %), from the evidence.

The source is the interface watch's bundles (duty `watch`, one sealed bundle per site and day),
read by `watch_days` alone. It takes either shape:

1. the day's `availability.json` (schema ebill-ops/watch-availability/1, the watch's own count):
   {"day": "2026-11-20", "functions": {"issue": {"name_zh": "开票", "probes": 288, "up": 287,
    "down": 1, "availability_pct": 99.653, "outages": [{"from": "2026-11-20 10:05:00",
    "to": "2026-11-20 10:10:00", "minutes": 5.0, "ended": "recovered", "reason": "…"}]}, …}}
   up = the health call answered 2xx, down = it did not, anything else is not counted;
2. failing that, the day's result.json records one per probe:
   {"check": "ebill_function", "target": "开票（issue）", "status": "OK|WARN|FAIL|ERROR", "finished_at": …}
   (up = OK/WARN: it answered; down = FAIL/ERROR).
Availability = up / (up + down), per function and per day (local). Without watch bundles the report
says "no watch data" and, so the chart is not empty, falls back to the same health check's records
of the inspections, labelled as samples (a handful of probes a month say nothing about 99 %).
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
    per_function: dict[str, dict] = field(default_factory=dict)   # name -> {up, probes, pct}
    per_day: dict[str, dict] = field(default_factory=dict)        # YYYY-MM-DD -> {up, probes, pct}
    overall_pct: float | None = None
    outages: list[dict] = field(default_factory=list)             # the watch's, with function and day
    # each (day, function) not fully available: where the lost availability of the period lies
    days_below_full: list[dict] = field(default_factory=list)     # {day, function, up, probes, pct}

    @property
    def meets_goal(self) -> bool | None:
        return None if self.overall_pct is None else self.overall_pct >= GOAL_PCT


def _add(bucket: dict, up: int, probes: int) -> None:
    bucket["up"] = bucket.get("up", 0) + up
    bucket["probes"] = bucket.get("probes", 0) + probes


def watch_days(bundles: list[Bundle], tz: str) -> tuple[list[tuple[str, str, int, int]], list[dict]]:
    """(day, function, up, counted probes) of every watch bundle, and the outages it recorded."""
    z = ZoneInfo(tz)
    counts, outages = [], []
    for b in bundles:
        if b.duty != WATCH_DUTY:
            continue
        av = b.files.get("availability.json")
        if av and "functions" in av:
            for key, f in av["functions"].items():
                name = f"{f.get('name_zh', key)}（{key}）"
                counts.append((av.get("day") or b.period, name, f.get("up", 0), f.get("up", 0) + f.get("down", 0)))
                outages += [{**o, "function": name, "prefix": b.prefix} for o in f.get("outages", [])]
            continue
        for r in b.results:
            if r.get("check") == CHECK and r.get("status") in UP | DOWN:
                day = datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")).astimezone(z).strftime("%Y-%m-%d")
                counts.append((day, r.get("target", ""), int(r["status"] in UP), 1))
    return counts, outages


def _pct(up: int, probes: int) -> float | None:
    return round(100.0 * up / probes, 3) if probes else None


def availability(bundles: list[Bundle], tz: str) -> Availability:
    counts, outages = watch_days(bundles, tz)
    source = "watch"
    if not counts:
        z = ZoneInfo(tz)
        counts = [(datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")).astimezone(z).strftime("%Y-%m-%d"),
                   r.get("target", ""), int(r["status"] in UP), 1)
                  for b in bundles if b.duty in ("inspection", "holiday_precheck") for r in b.results
                  if r.get("check") == CHECK and r.get("status") in UP | DOWN]
        source = "inspection_samples" if counts else "none"
    out = Availability(source, outages=outages)
    per_function_day: dict[tuple[str, str], dict] = {}
    for day, name, up, probes in counts:
        _add(out.per_function.setdefault(name, {}), up, probes)
        _add(out.per_day.setdefault(day, {}), up, probes)
        _add(per_function_day.setdefault((day, name), {}), up, probes)
    out.days_below_full = [{"day": day, "function": name, **v, "pct": _pct(v["up"], v["probes"])}
                           for (day, name), v in sorted(per_function_day.items()) if v["probes"] and v["up"] < v["probes"]]
    for bucket in (*out.per_function.values(), *out.per_day.values()):
        bucket["pct"] = _pct(bucket["up"], bucket["probes"])
    out.per_day = dict(sorted(out.per_day.items()))
    out.per_function = {k: v for k, v in out.per_function.items() if v["probes"]}
    total = sum(b["probes"] for b in out.per_function.values())
    out.overall_pct = _pct(sum(b["up"] for b in out.per_function.values()), total)
    return out
