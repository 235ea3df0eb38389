"""The period's bundles, read from the evidence store and nothing else.

A service report must be regenerable by anyone later (an auditor, the next vendor) from the bucket
alone: this module is its only input. It reads each bundle's manifest (duty, period, verdict,
times, sequence) and its result.json (the records), and keeps the manifest's SHA-256 so the
report can cite every bundle it counts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from config.evidence import EvidenceStoreConfig
from tasks.evidence.store import MANIFEST, Store, open_store, sha256_hex, split_key

# Duties the report never reads back: its own earlier reports.
NOT_COUNTED = {"service_report"}
# JSON files beyond result.json the report reads, per duty: the watch's day of availability, the
# monthly inspection's signed checkpoint (tasks/report/checkpoints.py).
READ_ALSO = {"watch": ("availability.json",), "inspection": ("checkpoint.json",)}


class BadPeriod(ValueError):
    """A --period the report cannot read (the message names it and gives the accepted forms)."""


@dataclass(frozen=True)
class Period:
    label: str            # 2026H2, 2026Q4, 2026-11
    kind: str             # half | quarter | month
    first: date
    end: date             # exclusive

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        z = ZoneInfo(tz)
        return (datetime.combine(self.first, datetime.min.time(), z), datetime.combine(self.end, datetime.min.time(), z))

    @property
    def title_zh(self) -> str:
        y = self.first.year
        if self.kind == "half":
            return f"{y}年{'上' if self.first.month == 1 else '下'}半年"
        if self.kind == "quarter":
            return f"{y}年第{(self.first.month - 1) // 3 + 1}季度"
        return f"{y}年{self.first.month}月"


def _next_month(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def parse_period(text: str) -> Period:
    """2026H1/2026H2 (half-year, QH's 考核周期), 2026Q1-Q4, 2026-01 .. 2026-12."""
    t = text.strip().upper()
    try:
        if len(t) == 6 and t[4] == "H" and t[5] in "12":
            first = date(int(t[:4]), 1 if t[5] == "1" else 7, 1)
            return Period(t, "half", first, _next_month(first, 6))
        if len(t) == 6 and t[4] == "Q" and t[5] in "1234":
            first = date(int(t[:4]), 3 * int(t[5]) - 2, 1)
            return Period(t, "quarter", first, _next_month(first, 3))
        if len(t) == 7 and t[4] == "-":
            first = date(int(t[:4]), int(t[5:]), 1)
            return Period(t, "month", first, _next_month(first, 1))
    except ValueError:
        pass
    raise BadPeriod(f"--period {text}: not a period (hint: 2026H2 for a half-year, 2026Q4 for a quarter, "
                    f"2026-11 for a month; previous-half, previous-quarter or previous-month as of the run's day)")


# A scheduled report names its period relative to the day it runs (the deployment's parameters are
# fixed): the last complete half-year, quarter or month before that day, in the hospital's time.
PREVIOUS = {"previous-half": 6, "previous-quarter": 3, "previous-month": 1}


def resolve_period(text: str, today: date) -> Period:
    """`parse_period`, and `previous-half` / `previous-quarter` / `previous-month`: the last one that
    ended on or before `today` (on 2027-01-05, previous-half is 2026H2; on 2026-12-02, 2026H1)."""
    months = PREVIOUS.get(text.strip().lower())
    if months is None:
        return parse_period(text)
    first = date(today.year, (today.month - 1) // months * months + 1, 1)  # the running period's first day
    prev = _next_month(first, -months)
    label = {6: f"{prev.year}H{1 if prev.month == 1 else 2}", 3: f"{prev.year}Q{(prev.month - 1) // 3 + 1}",
             1: f"{prev.year}-{prev.month:02d}"}[months]
    return parse_period(label)


@dataclass
class Bundle:
    prefix: str
    site: str
    duty: str
    period: str
    verdict: str
    started_at: datetime
    finished_at: datetime
    sequence: int | None
    manifest_sha256: str
    backdated: bool
    results: list[dict] = field(default_factory=list)
    context: dict = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)   # other JSON files the report reads (READ_ALSO)

    def as_row(self) -> dict:
        return {"prefix": self.prefix, "duty": self.duty, "period": self.period, "verdict": self.verdict,
                "started_at": self.started_at.isoformat(), "sequence": self.sequence,
                "manifest_sha256": self.manifest_sha256, "backdated": self.backdated}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_bundle(store: Store, prefix: str, raw_manifest: bytes | None = None) -> Bundle:
    raw = raw_manifest if raw_manifest is not None else store.get(prefix + MANIFEST)
    m = json.loads(raw)
    names = {f["name"] for f in m.get("files", [])}
    result = json.loads(store.get(prefix + "result.json")) if "result.json" in names else {}
    files = {n: json.loads(store.get(prefix + n)) for n in READ_ALSO.get(m["duty"], ()) if n in names}
    return Bundle(prefix=prefix, site=m["site"], duty=m["duty"], period=m.get("period", ""), verdict=m.get("verdict", ""),
                  started_at=_ts(m["started_at"]), finished_at=_ts(m["finished_at"]), sequence=m.get("sequence"),
                  manifest_sha256=sha256_hex(raw), backdated=bool((m.get("extra") or {}).get("backdated")),
                  results=result.get("results", []), context=result.get("context", {}), files=files)


def read_period(cfg: EvidenceStoreConfig, site: str, start: datetime, end: datetime,
                before: timedelta = timedelta(0)) -> list[Bundle]:
    """Every bundle of `site` that started in [start - before, end), oldest first. The folder's
    stamp is the start in UTC, so the year folders and stamps are filtered before any download."""
    store = open_store(cfg)
    lo, hi = start - before, end
    lo_stamp, hi_stamp = lo.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ"), \
        hi.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    out = []
    for duty_dir in store.subfolders(f"{site}/"):
        duty = duty_dir.rstrip("/").split("/")[-1]
        if duty in NOT_COUNTED:
            continue
        for year in range(lo.year, hi.year + 1):
            for o in store.list(f"{duty_dir}{year}/"):
                pk = split_key(o.object_name)
                if not pk or pk[1] != MANIFEST:
                    continue
                stamp = pk[0].rstrip("/").split("/")[-1].split("_")[0]
                if lo_stamp <= stamp < hi_stamp:
                    out.append(read_bundle(store, pk[0]))
    return sorted(out, key=lambda b: (b.started_at, b.prefix))
