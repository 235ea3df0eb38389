"""Planted stock defects (DQ21), applied to the stock book's segments just before they are written.

A closed segment gets current_no = end_no + 2, a pointer run past its end (a double increment in
the point's number allocation). Only closed segments (USED_UP first, then VOID) are touched: no
number is taken from them any more, so stock-level and remaining-stock figures of ACTIVE stock stay
as they were, and the DQ22 used range (bill_no >= start_no AND bill_no < current_no AND bill_no <=
end_no) covers no other segment's numbers, since segments of one code are disjoint.
"""
from __future__ import annotations

import random


def plant_overrun(segments: list, n: int, rng: random.Random) -> list[list[str]]:
    """Break DQ21 on `n` closed segments (as many as there are, if fewer); their [bill_code, start_no]."""
    used_up = [s for s in segments if s.state == "2"]
    void = [s for s in segments if s.state == "3"]
    # USED_UP first (their pointer already sits at end + 1); VOID ones when a short run has too few
    picked = rng.sample(used_up, min(n, len(used_up)))
    picked += rng.sample(void, min(n - len(picked), len(void)))
    for s in picked:
        s.cur = s.end + 2
    return [[s.code, f"{s.start:010d}"] for s in picked]
