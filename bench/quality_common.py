"""What the data-quality benchmark's two phases share (bench/quality_bench.py runs them,
bench/quality_naive.py is the naive GX run): the schema, the relations read and the period.
Apart so that neither phase imports the other (no import cycle)."""
from __future__ import annotations

from datetime import date, datetime

CANON = "ebill_canon"
PW_ENV = "EBOPS_DEMO_DB_PASSWORD"  # the read-only account's password (ebops sandbox env)
READ_RELATIONS = ("ebill_invoice", "ebill_invoice_item", "his_settlement", "ebill_stock")


def period(p: dict) -> tuple[date, date, datetime]:
    """(start, end, now) of a bench database, from its meta file."""
    return date.fromisoformat(p["start"]), date.fromisoformat(p["end"]), datetime.fromisoformat(p["now"])
