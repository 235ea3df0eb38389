"""The watch's day journal: probe records appended locally, uploaded to the store as parts.

The evidence bucket is object-locked: an object cannot be appended to. So each probe record is
- appended (one JSON line, fsync'd) to `<state>/watch/<day>/probes.jsonl` on the worker, and
- uploaded as one write-once object, a **part**: `_watch/<site>/<day>/<probe-id>.json` (created
  only if absent; under object lock like every evidence object; outside the bundle layout, so
  listing and verifying bundles never mistake it, like the sequence claims under `_chains/`).
A record that could not be uploaded (store down) stays in the journal and goes up with the next
cycle (`uploaded` counts the journal's lines already in the store). The day is sealed into one
evidence bundle from the union of both (tasks/watch/seal.py), so neither a lost worker (its parts
are in the store) nor a store that was down (its lines are in the journal) loses a probe.

The alert state (what the receivers were last told per item) travels in every record
(`announced`): the newest part in the store is where a fresh worker finds it (tasks/watch/alerting.py).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from minio.error import S3Error

from tasks.core.atomic_file import write_atomic
from tasks.evidence.store import Store, StoreUnreachable

log = logging.getLogger("ebops.watch")
PARTS = "_watch"
JOURNAL = "probes.jsonl"
UPLOADED = "uploaded"


def part_key(site: str, day: str, probe_id: str) -> str:
    return f"{PARTS}/{site}/{day}/{probe_id}.json"


def record_bytes(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Journal:
    """The watch's local state of one site: `<state_dir>/watch/`."""

    def __init__(self, base: Path, site: str):
        self.base, self.site = Path(base), site

    def day_dir(self, day: str) -> Path:
        return self.base / day

    def days(self) -> list[str]:
        """Days with a local journal, oldest first."""
        if not self.base.is_dir():
            return []
        return sorted(p.name for p in self.base.iterdir() if p.is_dir() and (p / JOURNAL).exists())

    def append(self, record: dict) -> None:
        d = self.day_dir(record["day"])
        d.mkdir(parents=True, exist_ok=True)
        with open(d / JOURNAL, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():  # a line cut by a crash must not swallow this record: start a line of its own
                f.seek(-1, os.SEEK_END)
                cut = f.read(1) != b"\n"
                f.seek(0, os.SEEK_END)
                if cut:
                    f.write(b"\n")
            f.write(record_bytes(record) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def records(self, day: str, keep_cut: bool = False) -> list[dict]:
        """The day's records in journal order; a line cut by a crash mid-write is skipped (with
        keep_cut, it stands as None, so that line numbers still count the uploaded ones)."""
        f = self.day_dir(day) / JOURNAL
        if not f.exists():
            return []
        out: list = []
        for n, line in enumerate(f.read_bytes().splitlines(), 1):
            try:
                out.append(json.loads(line))
            except ValueError:
                log.warning("watch journal %s line %d is not JSON (cut by a crash?): skipped", f, n)
                if keep_cut:
                    out.append(None)
        return out

    def _uploaded(self, day: str) -> int:
        try:
            return int((self.day_dir(day) / UPLOADED).read_text())
        except (OSError, ValueError):
            return 0

    def upload_pending(self, store: Store) -> int:
        """Upload every journal line not yet in the store, oldest day first; how many went up.
        Stops at the first failure (the rest waits for the next cycle)."""
        sent = 0
        for day in self.days():
            records = self.records(day, keep_cut=True)
            done = self._uploaded(day)
            for rec in records[done:]:
                if rec is not None:  # absent, or ours already (a retry after a crash)
                    store.put_if_absent(part_key(self.site, day, rec["id"]), record_bytes(rec))
                done += 1
                sent += 1
                write_atomic(self.day_dir(day) / UPLOADED, str(done).encode())
        return sent

    def forget(self, day: str) -> None:
        """The day is sealed (its bundle is in the store or the outbox): drop the local journal."""
        shutil.rmtree(self.day_dir(day), ignore_errors=True)

    # ---------------------------------------------------------------- small state files
    def read_state(self, name: str) -> dict:
        try:
            return json.loads((self.base / name).read_text())
        except (OSError, ValueError):
            return {}

    def write_state(self, name: str, data: dict) -> None:
        write_atomic(self.base / name, json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8"))


def store_days(store: Store, site: str) -> list[str]:
    """Days that have parts in the store, oldest first."""
    return [p.rstrip("/").rsplit("/", 1)[1] for p in store.subfolders(f"{PARTS}/{site}/")]


def store_records(store: Store, site: str, day: str) -> list[dict]:
    out = []
    for o in store.list(f"{PARTS}/{site}/{day}/"):
        try:
            out.append(json.loads(store.get(o.object_name)))
        except ValueError:
            log.warning("watch part %s is not JSON: left out of the day", o.object_name)
    return out


def newest_store_record(store: Store, site: str) -> dict | None:
    """The newest probe record in the store (the alert state of a worker that lost its own)."""
    for day in reversed(store_days(store, site)[-2:]):
        names = sorted(o.object_name for o in store.list(f"{PARTS}/{site}/{day}/"))
        if names:
            return json.loads(store.get(names[-1]))
    return None


def day_records(journal: Journal, store: Store | None, day: str) -> list[dict]:
    """The day's probe records from the journal and the store's parts, each once, in time order."""
    by_id = {r["id"]: r for r in journal.records(day)}
    if store is not None:
        for r in store_records(store, journal.site, day):
            by_id.setdefault(r["id"], r)
    return sorted(by_id.values(), key=lambda r: (r["at"], r["id"]))


STORE_ERRORS = (StoreUnreachable, S3Error, OSError)
