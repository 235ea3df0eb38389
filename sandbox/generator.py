"""Synthetic e-bill data for the sandbox hospital, bulk-loaded into the vendor's tables.

Seeded (the same seed, size and end give the same data), streamed day by day (memory does not grow
with the size), and loaded with COPY by a second thread while the next chunk is generated, so that a
quarter of a large hospital (1,000,000 bills, ~6,000,000 items) loads in minutes.

The data are valid against every rule of docs/ebill-reference-schema.md unless defects are asked
for: `defects={"DQ07": 5}` breaks exactly 5 bills on that rule (sandbox/defects.py; stock segments for
DQ21, sandbox/defects_stock.py) and the anomaly manifest records their business keys. Recent data
look like a healthy system's: uploads done except for the last minutes, no interface failures in
the last hours, stock well above warning levels.
Timestamps are naive Asia/Shanghai local time, as HIS systems store them.
"""
from __future__ import annotations

import json
import random
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from sandbox import defects as defect_rules
from sandbox.bills import Bill, BillFactory
from sandbox.defects_stock import plant_overrun
from sandbox.ebill_catalog import current_codes
from sandbox.loader import CopyLoader, Rows
from sandbox.stock import StockBook

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHUNK_BILLS = 5000
REFUND_RATE = 0.015
VENDOR_TABLES = ["t_ebill_detail", "t_ebill_main", "t_his_settle", "t_interface_log", "t_bill_stock", "t_bill_place",
                 "t_bill_void"]


def local_now() -> datetime:
    return datetime.now(SHANGHAI).replace(tzinfo=None)


HISTORY_BILLS_PER_DAY = 2  # the older years: few bills, enough for the year-end's compression to work on


def years_covered(days: int, end_date: date, history_from: int | None = None) -> list[int]:
    """Years holding generated bills (refunds may spill a few days past end_date within the cut-off)."""
    start = end_date - timedelta(days=days - 1)
    first = min(start.year, history_from) if history_from else start.year
    return list(range(first, end_date.year + 1))


class Generation:
    """One seeded run of the generator: iterate chunks() for COPY buffers; counts and manifest fill as it goes."""

    def __init__(self, seed: int, days: int, bills_per_day: int, end_date: date | None = None,
                 now: datetime | None = None, defects: dict[str, int] | None = None,
                 history_from: int | None = None):
        if days < 1 or bills_per_day < 1:
            raise ValueError("days and bills_per_day must be at least 1")
        self.seed, self.days, self.bills_per_day = seed, days, bills_per_day
        now = now or local_now()
        self.end_date = end_date or now.date()
        # Older years (技术年结 compresses years that ended more than two years ago): from 1 January
        # of `history_from` up to the main window, HISTORY_BILLS_PER_DAY bills a day.
        self.main_start = self.end_date - timedelta(days=days - 1)
        self.first_day = date(history_from, 1, 1) if history_from and history_from < self.main_start.year \
            else self.main_start
        if defects and self.first_day < self.main_start:
            # defect targets are ordinals over the main window's bills: history would shift them
            raise ValueError("defects and history_from cannot be combined (hint: plant defects without older years)")
        self.history_from = history_from
        day_after = datetime.combine(self.end_date + timedelta(days=1), datetime.min.time())
        self.cutoff = min(now, day_after)
        self.plan = defect_rules.check_request(defects)
        self.rng = random.Random(seed)
        self.defect_rng = random.Random(seed ^ 0x5EED)  # a separate stream: defects do not change the clean data
        self.factory = BillFactory(self.rng, bills_per_day * days, self.cutoff)
        self.stock = StockBook(bills_per_day)
        full_days = days if self.cutoff >= day_after else days - 1
        blue_plan = {r: n for r, n in self.plan.items() if r not in defect_rules.RED_BILL | defect_rules.STOCK}
        red_plan = {r: n for r, n in self.plan.items() if r in defect_rules.RED_BILL}
        self.targets = _defect_targets(blue_plan, int(full_days * bills_per_day * (1 - REFUND_RATE * 2)),
                                       self.defect_rng)
        # red bills: about REFUND_RATE of the non-inpatient bills; counted low, so that the last
        # target comes well before the last red bill
        self.red_targets = _defect_targets(red_plan, int(full_days * bills_per_day * REFUND_RATE * 0.5),
                                           self.defect_rng, "red bills")
        self.stock_due = {r: n for r, n in self.plan.items() if r in defect_rules.STOCK}
        self.context = defect_rules.PlantContext(self.cutoff)
        self.manifest: dict[str, list[list[str]]] = {rule: [] for rule in self.plan}
        self.planted: list[dict] = []  # {"planted": rule, "violates": {rule: key}} per defect
        self.counts = {"bills": 0, "red_bills": 0, "items": 0, "settlements": 0, "call_logs": 0}

    @property
    def years(self) -> list[int]:
        return years_covered(self.days, self.end_date, self.history_from)

    def chunks(self) -> Iterator[dict[str, list[str]]]:
        factory, rows, stock = self.factory, Rows(), self.stock
        pending: list[tuple[datetime, Bill]] = []  # blue bills whose refund is still to come
        blue_ordinal = red_ordinal = 0
        day = self.first_day
        last = self.end_date + timedelta(days=1)
        # One pass past end_date issues nothing new but writes the refunds still due: a bill refunded
        # on the last day gets its red bill too (else it would stand FLUSHED without one, DQ12).
        while day <= self.end_date or (pending and day <= last):
            per_day = self.bills_per_day if day >= self.main_start else HISTORY_BILLS_PER_DAY
            day_bills = factory.day_of_bills(day, per_day, REFUND_RATE) if day <= self.end_date else []
            next_day = datetime.combine(day + timedelta(days=1), datetime.min.time())
            due = [blue for at, blue in pending if at < next_day]
            pending = [(at, blue) for at, blue in pending if at >= next_day]
            events = [(b.issue_time, 0, b) for b in day_bills] + [(blue.refund_at, 1, blue) for blue in due]
            events.sort(key=lambda e: (e[0], e[1]))
            for _, is_red, bill in events:
                rule = None
                if is_red:  # the red bill is built now, from its blue bill as issued
                    bill = factory.red_bill(bill)
                    self.counts["red_bills"] += 1
                elif bill.refund_at is not None:
                    pending.append((bill.refund_at, bill))
                # Always taken from the bill's own place and code, even when a defect changes them
                # below: the clean bills' numbers do not depend on the defects asked for.
                no = stock.take(bill.place, bill.code, bill.issue_time.date())
                clean_blue = not is_red and bill.refund_at is None
                if clean_blue:
                    blue_ordinal += 1
                    rule = self._plant(bill, blue_ordinal, self.targets, defect_rules.BEFORE_NUMBERING)
                    if rule is not None:  # a planted code or place gets numbers of its own
                        no = stock.take(bill.place, bill.code, bill.issue_time.date(), apart=True)
                bill.code_no(no)
                if is_red:
                    red_ordinal += 1
                    rule = self._plant(bill, red_ordinal, self.red_targets, defect_rules.RED_BILL)
                elif clean_blue and rule is None:
                    rule = self._plant(bill, blue_ordinal, self.targets, defect_rules.AFTER_NUMBERING)
                    if rule is None:
                        self.context.clean_no[(bill.place, bill.code)] = bill.no
                if rule is not None:  # keyed as written: code and number are final now
                    self._record(rule, {r: defect_rules.bill_key(r, bill)
                                        for r in (rule, *defect_rules.ALSO_VIOLATES.get(rule, ()))})
                factory.emit(bill, rows, self.counts)
                if rows.bills >= CHUNK_BILLS:
                    yield rows.take()
            day += timedelta(days=1)
        yield rows.take()
        stock_rows = stock.rows(self.cutoff, current_codes(self.cutoff.year), self._plant_stock)
        missing = {rule: len(t) for rule, t in {**self.targets, **self.red_targets}.items() if t}
        missing.update({rule: n for rule, n in self.stock_due.items() if n})
        if missing:
            raise RuntimeError(f"could not plant every defect (not enough eligible bills or segments): {missing}; "
                               f"hint: generate more days or bills per day")
        self.counts["stock_segments"] = stock.segments_count
        yield {"t_bill_place": factory.place_rows(), "t_bill_stock": stock_rows}

    def _plant(self, bill: Bill, ordinal: int, targets: dict[str, list[int]], phase: frozenset) -> str | None:
        """Plant on `bill` the first due defect of `phase` it is eligible for (one defect per bill)."""
        for rule, due in targets.items():
            if rule in phase and due and ordinal >= due[0] and \
                    defect_rules.DEFECTS[rule](bill, self.defect_rng, self.context):
                due.pop(0)
                return rule
        return None

    def _plant_stock(self, segments: list) -> None:
        for rule, n in self.stock_due.items():
            keys = plant_overrun(segments, n, self.defect_rng)
            self.stock_due[rule] = n - len(keys)
            for key in keys:
                self._record(rule, {rule: key})

    def _record(self, rule: str, violates: dict[str, list[str]]) -> None:
        for r, key in violates.items():
            self.manifest.setdefault(r, []).append(key)
        self.planted.append({"planted": rule, "violates": violates})

    def document(self) -> dict:
        """The anomaly manifest: per rule the keys a correct checker reports, their columns, and each defect."""
        return {"seed": self.seed, "days": self.days, "bills_per_day": self.bills_per_day,
                "end_date": self.end_date.isoformat(), "key": defect_rules.BILL_KEY, "rules": self.manifest,
                "keys": {rule: defect_rules.KEYS[rule] for rule in self.manifest}, "defects": self.planted}

    def write_manifest(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.document(), ensure_ascii=False, indent=1), encoding="utf-8")


def generate(dsn_admin: str, seed: int = 20240101, days: int = 400, bills_per_day: int = 60,
             end_date: date | None = None, *, now: datetime | None = None,
             defects: dict[str, int] | None = None, manifest_path: Path | None = None,
             schema: str = "ebill", history_from: int | None = None) -> dict:
    """Fill the vendor tables (replacing what they hold) and return counts, timing and the manifest.

    Bills are generated for `days` days ending with `end_date` (default: today in Asia/Shanghai),
    `bills_per_day` each, but none issued after `now` (default: the current local time), so a run
    that ends today stops at the present minute. The anomaly manifest (Generation.document():
    "rules" {rule_id: [key, ...]}, "keys" {rule_id: key columns}, "defects" [{"planted", "violates"}])
    is returned under "manifest" and written to `manifest_path` when given.
    """
    import psycopg  # only loading needs the driver; the generation itself is pure Python

    started = time.monotonic()
    run = Generation(seed, days, bills_per_day, end_date, now, defects, history_from)
    with psycopg.connect(dsn_admin, autocommit=True) as conn:
        _check_partitions(conn, schema, run.years)
        conn.execute(f"TRUNCATE {', '.join(f'{schema}.{t}' for t in VENDOR_TABLES)}")
    loader = CopyLoader(dsn_admin, schema)
    try:
        for chunk in run.chunks():
            loader.put(chunk)
    finally:
        loader.close()
    if manifest_path is not None:
        run.write_manifest(manifest_path)
    return {**run.counts, "seconds": round(time.monotonic() - started, 2),
            "cutoff": run.cutoff.isoformat(sep=" ", timespec="seconds"), "manifest": run.document()}


def _defect_targets(plan: dict[str, int], bills: int, rng: random.Random, what: str = "bills") -> dict[str, list[int]]:
    """Bill ordinals at which each rule's defects are planted, spread over the whole period."""
    need = sum(plan.values())
    if need == 0:
        return {}
    lo, hi = max(1, bills // 20), int(bills * 0.9)
    if hi - lo < need * 3:
        raise ValueError(f"defects: {need} defects need more data than ~{bills} {what} "
                         f"(hint: more days or bills per day)")
    picks = rng.sample(range(lo, hi), need)
    out, i = {}, 0
    for rule, n in plan.items():
        out[rule] = sorted(picks[i:i + n])
        i += n
    return out


def _check_partitions(conn, schema: str, years: list[int]) -> None:
    for year in years:
        for table in ("t_ebill_main", "t_ebill_detail"):
            if conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table}_{year}",)).fetchone()[0] is None:
                raise RuntimeError(f"{schema}.{table} has no partition for {year} "
                                   f"(hint: sandbox.postgres.add_year(conn, {year}, root) creates it)")
