"""Bill-number stock (票据库存): segments of numbers handed to each issuing point.

The finance bureau allocates numbers per bill code (one code per bill kind and year); the hospital
hands each issuing point a segment, and the point issues numbers from it in order. When a segment
is used up the point receives the next one. Segments of a past year's code that still hold numbers
are written off (VOID) at the end, as hospitals do when the new year's code arrives.

Bills whose code or place a planted defect changed (sandbox/defects.py, BEFORE_NUMBERING) take their
numbers from segments kept apart, numbered from APART_BASE and written after all others, so that
planting moves neither the numbers nor the segment ids of the clean data.
"""
from __future__ import annotations

import math
from datetime import date, datetime
from typing import Callable

from sandbox.ebill_catalog import daily_use_by_place
from sandbox.loader import line

APART_BASE = 9_000_000_000  # far above any clean number: apart segments never overlap clean ones


class Segment:
    __slots__ = ("id", "place", "code", "start", "end", "cur", "warn", "state", "received")

    def __init__(self, sid: int, place: str, code: str, start: int, size: int, warn: int, received: date):
        self.id, self.place, self.code = sid, place, code
        self.start, self.end, self.cur = start, start + size - 1, start
        self.warn, self.state, self.received = warn, "1", received


class StockBook:
    def __init__(self, bills_per_day: int) -> None:
        self.daily = daily_use_by_place(bills_per_day)
        self.segments: list[Segment] = []
        self._active: dict[tuple[str, str], Segment] = {}
        self._next_no: dict[str, int] = {}
        self.apart: list[Segment] = []  # segments of planted codes and places
        self._apart_active: dict[tuple[str, str], Segment] = {}
        self._apart_next: dict[str, int] = {}

    @property
    def segments_count(self) -> int:
        return len(self.segments) + len(self.apart)

    def _sizes(self, place: str) -> tuple[int, int]:
        daily = self.daily.get(place, 1.0)
        size = max(500, math.ceil(daily * 45 / 500) * 500)  # about six weeks of use per segment
        warn = max(20, math.ceil(daily * 3))  # the point's warning level: about three days
        return size, warn

    def _allocate(self, place: str, code: str, received: date, size: int | None = None, apart: bool = False) -> Segment:
        default_size, warn = self._sizes(place)
        next_no, segments, active = ((self._apart_next, self.apart, self._apart_active) if apart else
                                     (self._next_no, self.segments, self._active))
        start = next_no.get(code, APART_BASE if apart else 1)
        # an apart segment's id is provisional: rows() numbers them after the clean ones
        seg = Segment(len(segments) + 1, place, code, start, size or default_size, warn, received)
        next_no[code] = seg.end + 1
        segments.append(seg)
        active[(place, code)] = seg
        return seg

    def take(self, place: str, code: str, day: date, apart: bool = False) -> int:
        """The next number for a bill of `code` issued at `place` (`apart`: a planted code or place)."""
        seg = (self._apart_active if apart else self._active).get((place, code))
        if seg is None or seg.cur > seg.end:
            if seg is not None:
                seg.state = "2"  # USED_UP
            seg = self._allocate(place, code, day, apart=apart)
        no = seg.cur
        seg.cur += 1
        if seg.cur > seg.end:
            seg.state = "2"
        return no

    def top_up(self, cutoff: datetime, current_codes: dict[str, str]) -> None:
        """Give every issuing point at least 30 days of numbers above its warning level."""
        for place, code in current_codes.items():
            size, warn = self._sizes(place)
            need = math.ceil(self.daily.get(place, 1.0) * 30) + warn
            remaining = sum(s.end - s.cur + 1 for s in self.segments
                            if s.place == place and s.code == code and s.state == "1")
            if remaining < need:
                self._allocate(place, code, cutoff.date(), size=max(size, math.ceil(need / 500) * 500))

    def rows(self, cutoff: datetime, current_codes: dict[str, str],
             plant: Callable[[list[Segment]], None] | None = None) -> list[str]:
        """The segments as rows; `plant` may break the clean segments once their states are final."""
        self.top_up(cutoff, current_codes)
        for s in self.segments:
            if s.state == "1" and s.code not in current_codes.values():
                s.state = "3"  # a past year's leftover numbers are written off
        for n, s in enumerate(self.apart, len(self.segments) + 1):
            # cut to the numbers the planted bills took and closed (USED_UP): nothing is issued from
            # a planted code or place later (sandbox/traffic.py issues from ACTIVE segments)
            s.id, s.end, s.state = n, s.cur - 1, "2"
        if plant is not None:
            plant(self.segments)
        return [line((s.id, s.place, s.code, f"{s.start:010d}", f"{s.end:010d}", f"{s.cur:010d}",
                      s.warn, s.state, s.received.isoformat())) for s in self.segments + self.apart]
