"""The one clock of the records and bundles, and the backdating that backfills a sandbox's history.

A service report covers months of duties. To show one on a sandbox that was started today, the
real flows are run against the sandbox as if at past dates (`sandbox/backfill.py`): every record's
and bundle's time is shifted back by the same offset, while the sandbox's servers are read as they
are now. Production never backdates; a bundle written while backdated says so in its manifest
(`extra.backdated`, flows/common.store_evidence), so nobody can mistake it for a run on that date.
The offset is process-wide on purpose: Prefect runs a flow's tasks on threads of its own.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

_lock = threading.Lock()
_offset = timedelta(0)


def now() -> datetime:
    """The current time in UTC, shifted back while a backfill is backdating."""
    return datetime.now(timezone.utc) - _offset


def backdated_by() -> timedelta:
    """How far the clock is shifted back (zero outside a backfill)."""
    return _offset


@contextmanager
def backdated(at: datetime) -> Iterator[None]:
    """Run the block as if it started at `at` (aware); time goes on at its real pace inside it."""
    global _offset
    if at.tzinfo is None:
        raise ValueError("backdated(at): give an aware datetime (the hospital's timezone or UTC)")
    with _lock:
        before = _offset
        _offset = datetime.now(timezone.utc) - at
    try:
        yield
    finally:
        with _lock:
            _offset = before


def backdated_note(finished_at: datetime) -> dict | None:
    """The manifest's `extra.backdated` of a bundle finished now (None outside a backfill): every
    bundle written under a backdated clock says so, whichever writer wrote it."""
    shift = _offset
    if not shift:
        return None
    return {"backdated": {"by_seconds": round(shift.total_seconds()), "real_finished_at": (finished_at + shift).isoformat(),
                          "note": "sandbox history backfill: servers read at the real time, records dated back"}}
