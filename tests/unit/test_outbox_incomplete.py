"""Outbox bundles without a manifest (a run stopped while writing one): set aside, never counted,
and never while their writer still lives (tasks/evidence/bundle.py)."""
from __future__ import annotations

import fcntl
import os
import time

from tasks.evidence.outbox import INCOMPLETE_DIR, WRITING, outbox_bundles, set_aside_incomplete


def _folder(outbox, name, *, manifest=False, lock=True):
    d = outbox / "demo" / "inspection" / "2026" / name
    d.mkdir(parents=True)
    (d / "report.html").write_text("x")
    if manifest:
        (d / "manifest.json").write_text("{}")
    if lock:
        (d / WRITING).touch()
    return d


def test_only_abandoned_folders_without_manifest_are_set_aside(tmp_path):
    stopped = _folder(tmp_path, "20260101T000000Z_stopped")
    complete = _folder(tmp_path, "20260101T000001Z_complete", manifest=True, lock=False)
    writing = _folder(tmp_path, "20260101T000002Z_writing")
    fresh_unlocked = _folder(tmp_path, "20260101T000003Z_fresh", lock=False)
    old_unlocked = _folder(tmp_path, "20260101T000004Z_old", lock=False)
    long_ago = time.time() - 3600
    os.utime(old_unlocked, (long_ago, long_ago))
    with open(writing / WRITING, "a") as held:  # another run still writing that bundle
        fcntl.flock(held, fcntl.LOCK_EX)
        moved = set_aside_incomplete(tmp_path, "demo")
    assert sorted(moved) == [f"demo/inspection/2026/{d.name}/" for d in (stopped, old_unlocked)]
    assert (tmp_path / INCOMPLETE_DIR / "demo/inspection/2026" / stopped.name / "report.html").exists()
    assert complete.exists() and writing.exists() and fresh_unlocked.exists()
    assert not stopped.exists() and not old_unlocked.exists()
    # Only a folder with a manifest is a bundle waiting for upload.
    assert outbox_bundles(tmp_path, "demo") == [complete]
    # Its writer gone (the lock released with its process), the next run sets it aside too.
    assert set_aside_incomplete(tmp_path, "demo") == [f"demo/inspection/2026/{writing.name}/"]
