"""Sealing a watch day into one evidence bundle, the 日运行表 (tasks/watch/journal.py explains why
a day is collected as a journal and parts first).

The first cycle after local midnight (the site's time zone) seals every earlier day not sealed
yet: days with a journal on this worker or parts in the store, and the days between them and
yesterday that have neither (the watch did not run: a bundle with coverage 0 %, so the gap is on
record), at most MAX_BACKFILL_DAYS back. Each day becomes one bundle of the chain `<site>/watch`,
written by the same BundleWriter as every other duty's (manifest, signature, sequence claim), in
day order. Its prefix is fixed by the day (`<site>/watch/<yyyy>/<day start UTC>_day-<day>/`), so
"is this day sealed?" is one lookup, and a day is never sealed twice by one site's runs (the
watch's duty slot lets one run at a time).

A day is sealed only while the store answers: its parts there may hold probes this worker has
not got (a worker replaced during the day); until then the journal waits.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from config.settings import Site
from tasks.core import clock
from tasks.core.reports import format_value, local_time, render_both
from tasks.core.results import Status, utcnow, verdict
from tasks.evidence.bundle import BundleWriter, StoredBundle
from tasks.evidence.sign import fingerprint
from tasks.evidence.store import MANIFEST, Store, bundle_prefix
from tasks.watch.availability import availability, day_results
from tasks.watch.journal import Journal, day_records, record_bytes, store_days

log = logging.getLogger("ebops.watch")
DUTY = "watch"
MAX_BACKFILL_DAYS = 35
SEALED_STATE = "sealed.json"


def day_start_utc(day: str, tz: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(0), ZoneInfo(tz)).astimezone(timezone.utc)


def day_prefix(site: Site, day: str) -> str:
    return bundle_prefix(site.site, DUTY, day_start_utc(day, site.timezone), f"day-{day}")


def is_sealed(site: Site, store: Store, outbox: Path, day: str) -> bool:
    prefix = day_prefix(site, day)
    return (Path(outbox) / prefix / MANIFEST).exists() or store.exists(prefix + MANIFEST)


def days_to_seal(today: str, journal_days: list[str], store_parts_days: list[str]) -> list[str]:
    """Every day before `today` from the first day with probes (journal or store) to yesterday,
    at most MAX_BACKFILL_DAYS back (pure)."""
    known = [d for d in set(journal_days) | set(store_parts_days) if d < today]
    if not known:
        return []
    end = date.fromisoformat(today) - timedelta(days=1)
    start = max(date.fromisoformat(min(known)), end - timedelta(days=MAX_BACKFILL_DAYS - 1))
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


@dataclass(frozen=True)
class SealedDay:
    day: str
    bundle: StoredBundle
    verdict: str
    probes: int


def seal_day(site: Site, journal: Journal, store: Store, outbox: Path, day: str, run_id: str,
             now: datetime | None = None) -> SealedDay:
    """Write the day's bundle: probes.jsonl, availability.json, the 日运行表 (report.html/md), result.json."""
    records = day_records(journal, store, day)
    interval_s = records[-1]["interval_s"] if records else site.watch.interval_minutes * 60
    av = availability(records, day, site.site, interval_s)
    results = day_results(av, site.watch)
    v = verdict(results)
    start = day_start_utc(day, site.timezone)
    sealed_at = (now or utcnow()).astimezone(timezone.utc)
    writer = BundleWriter(site.site, DUTY, day, f"day-{day}", start, site.evidence, outbox)
    counts = {s: sum(1 for r in results if r.status == s) for s in Status}
    context = dict(
        hospital=site.name, title="日运行表", kind_zh="接口运维日运行表", period=day, timezone=site.timezone,
        started_local=local_time(start, site.timezone), finished_local=local_time(start + timedelta(days=1), site.timezone),
        sealed_local=local_time(sealed_at, site.timezone), flow_run_id=run_id, verdict=v.value, verdict_zh=v.label_zh,
        engineer="", av=av, evidence_prefix=writer.prefix,
        summary=[{"status": s.value, "label": s.label_zh, "count": c} for s, c in counts.items() if c],
        results=[_row(r) for r in results],
        suggestions=[f"【{r.status.label_zh}】{r.title}（{r.target}）：{r.reason}" for r in results if r.status != Status.OK],
        evidence_key=writer.public_key and f"{writer.public_key}（{fingerprint(writer.public_key)}）",
    )
    for name, text in render_both("watch_day", **context).items():
        writer.add_file(name, text)
    writer.add_file("probes.jsonl", b"".join(record_bytes(r) + b"\n" for r in records))
    writer.add_json("availability.json", av)
    writer.add_json("result.json", {
        "site": site.site, "duty": DUTY, "period": day, "verdict": v.value, "flow_run_id": run_id,
        "form": "watch_day", "started_at": start.isoformat(), "finished_at": (start + timedelta(days=1)).isoformat(),
        "sealed_at": sealed_at.isoformat(), "results": [r.model_dump(mode="json") for r in results],
    })
    # sealed under a backfill's clock (tasks/core/clock.py): the manifest says so, as every duty's does
    bundle = writer.finish(verdict=v.value, finished_at=sealed_at, approvals=[],
                           extra={"sealed_by_flow_run": run_id, "probes": len(records), "day": day,
                                  **(clock.backdated_note(sealed_at) or {})})
    log.info("watch day %s of %s sealed: %s (%d probes, %s) in %s", day, site.site, bundle.prefix, len(records),
             v.value, bundle.location)
    return SealedDay(day, bundle, v.value, len(records))


def _row(r) -> dict:
    d = r.model_dump(mode="json")
    d.update(where=r.target, value_text=format_value(r), status_zh=r.status.label_zh, checked_local="")
    return d


def seal_due(site: Site, journal: Journal, store: Store, outbox: Path, today: str, run_id: str,
             now: datetime | None = None) -> list[SealedDay]:
    """Seal every day before `today` that is due; once per local day (SEALED_STATE remembers the
    day it last looked on), so the other cycles of a day cost nothing here. A fresh worker has no
    state and looks on its first cycle."""
    state = journal.read_state(SEALED_STATE)
    if state.get("checked_for") == today:
        return []
    sealed_before = set(state.get("sealed", []))
    done = []
    for day in days_to_seal(today, journal.days(), store_days(store, site.site)):
        if day in sealed_before or is_sealed(site, store, outbox, day):
            journal.forget(day)
            sealed_before.add(day)
            continue
        done.append(seal_day(site, journal, store, outbox, day, run_id, now))
        journal.forget(day)  # the bundle holds it now (in the store, or complete in the outbox)
        sealed_before.add(day)
    keep = sorted(sealed_before)[-MAX_BACKFILL_DAYS:]
    journal.write_state(SEALED_STATE, {"checked_for": today, "sealed": keep})
    return done
