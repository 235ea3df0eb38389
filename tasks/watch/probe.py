"""One probe cycle of the interface watch (接口运维, QH rows 7-12; MZ 一.11-18): the e-bill
functions' health calls, the interfaces' success rates over the last window, the stock levels.

The checks are the inspection's own (tasks/inspection/health.py, ebill.py), called as plain
functions, not as Prefect task runs: a cycle every few minutes must cost little (README, "The
watch": CPU-seconds per cycle are measured by bench/watch_bench.py). A cycle becomes one probe
record, a flat JSON object (PROBE_SCHEMA) that the day journal appends and the sealed day bundle
keeps line by line in probes.jsonl; the record is the contract the service report reads.
"""
from __future__ import annotations

import os
import resource
import secrets
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from config.settings import EBILL_FUNCTIONS_ZH, Site
from tasks.core import clock
from tasks.core.results import CheckResult, Status, verdict
from tasks.inspection.ebill import bill_stock, interface_calls
from tasks.inspection.health import ebill_functions, function_target

PROBE_SCHEMA = "ebill-ops/watch-probe/1"
REASON_CHARS = 300  # a probe line stays small: 288 of them a day per site
_FUNCTION_OF_TARGET = {function_target(k): k for k in EBILL_FUNCTIONS_ZH}


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far: what a cycle costs is the difference."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def item_key(r: CheckResult) -> str:
    """The stable key of one watched item: alert state and availability are kept per key."""
    if r.check == "ebill_function" and r.target in _FUNCTION_OF_TARGET:
        return f"function:{_FUNCTION_OF_TARGET[r.target]}"
    kind = {"interface_calls": "interface", "bill_stock": "stock"}.get(r.check, r.check)
    return f"{kind}:{r.target or 'all'}"


def item_of(r: CheckResult) -> dict:
    d = {"key": item_key(r), "check": r.check, "title": r.title, "target": r.target,
         "status": r.status.value, "value": r.value, "unit": r.unit, "code": r.code,
         "reason": r.reason[:REASON_CHARS]}
    if d["key"].startswith("function:"):
        d["function"] = d["key"].split(":", 1)[1]
    return d


def probe_id(at: datetime) -> str:
    """Sortable and unique: the UTC second, then random bits (two workers probing in one second)."""
    return at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def local_day(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")


def probe_site(site: Site, now: datetime | None = None) -> tuple[dict, list[CheckResult]]:
    """Run one cycle's checks; return the probe record and the records it was made from.

    `now` (aware) is the cycle's clock (None: tasks/core/clock, so a backfill's cycles are dated back):
    the interface window ends there and the record is filed under its local day. The health calls happen at the real time whatever `now` says.
    """
    at = (now or clock.now()).astimezone(timezone.utc).replace(microsecond=0)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    results = ebill_functions.fn(site) + interface_calls.fn(site, at) + bill_stock.fn(site, at)
    record = {
        "schema": PROBE_SCHEMA, "id": probe_id(at), "site": site.site,
        "at": at.isoformat().replace("+00:00", "Z"),
        "local": at.astimezone(ZoneInfo(site.timezone)).strftime("%Y-%m-%d %H:%M:%S"),
        "day": local_day(at, site.timezone), "timezone": site.timezone,
        "interval_s": site.watch.interval_minutes * 60,
        "verdict": verdict(results).value,
        "items": [item_of(r) for r in results],
        "pid": os.getpid(),  # which process probed (a served watch runs in the serving process)
        "cost": {"checks_cpu_s": round(cpu_seconds() - cpu0, 4), "checks_wall_s": round(time.perf_counter() - wall0, 3)},
    }
    return record, results


def worst(items: list[dict]) -> Status:
    return max((Status(i["status"]) for i in items), key=lambda s: s.rank, default=Status.OK)
