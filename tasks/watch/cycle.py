"""One cycle of the watch for one site, in its order:

1. seal the days that are due (only the first cycle of a local day looks: tasks/watch/seal.py);
2. probe (tasks/watch/probe.py);
3. announce the changes of state to the notify targets (tasks/watch/alerting.py), taking the
   last announced state from the local state, or from the newest part in the store when this
   worker has none;
4. append the record, with the changes, the deliveries and the new announced state, to the day
   journal, and upload the journal's lines that are not in the store yet as parts.

The store being down never fails a cycle: the records wait in the journal, the sealing waits
for the store. `now` is the cycle's clock (tests move it across midnight); None is tasks/core/clock's:
the real time, or a backfill's past one (the watch flow under clock.backdated).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from config.settings import Site
from tasks.core import clock
from tasks.core.results import CheckResult, Status
from tasks.evidence.store import Store, open_store
from tasks.watch.alerting import announce
from tasks.watch.journal import STORE_ERRORS, Journal, newest_store_record
from tasks.watch.probe import cpu_seconds, local_day, probe_site
from tasks.watch.seal import SealedDay, seal_due

log = logging.getLogger("ebops.watch")
ANNOUNCED = "announced.json"


@dataclass
class CycleOutcome:
    record: dict
    results: list[CheckResult]
    sealed: list[SealedDay] = field(default_factory=list)
    store_error: str | None = None

    @property
    def verdict(self) -> Status:
        return Status(self.record["verdict"])


def _store(site: Site) -> tuple[Store | None, str | None]:
    try:
        store = open_store(site.evidence)
        store.object_lock()  # one cheap call: is the store there at all?
        return store, None
    except STORE_ERRORS as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _announced_state(journal: Journal, store: Store | None, site: str) -> dict:
    local = journal.read_state(ANNOUNCED)
    if local or store is None:
        return local.get("announced", {})
    try:
        rec = newest_store_record(store, site)
    except STORE_ERRORS as exc:
        log.warning("watch of %s: the last alert state could not be read from the store: %s", site, exc)
        return {}
    return (rec or {}).get("announced", {})


def run_cycle(site: Site, state_base: Path, outbox: Path, run_id: str, now: datetime | None = None) -> CycleOutcome:
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    at = (now or clock.now()).astimezone(timezone.utc)
    journal = Journal(state_base, site.site)
    store, store_error = _store(site)
    sealed: list[SealedDay] = []
    if store is not None:
        try:
            sealed = seal_due(site, journal, store, outbox, local_day(at, site.timezone), run_id, now)
        except STORE_ERRORS as exc:
            store_error = f"sealing: {type(exc).__name__}: {exc}"
            log.warning("watch of %s: sealing waits for the store: %s", site.site, exc)
    record, results = probe_site(site, at)
    announced, seen, deliveries = announce(site, _announced_state(journal, store, site.site), record)
    record.update(flow_run_id=run_id, changes=seen, deliveries=deliveries, announced=announced)
    record["cost"].update(cycle_cpu_s=round(cpu_seconds() - cpu0, 4), cycle_wall_s=round(time.perf_counter() - wall0, 3))
    journal.append(record)
    journal.write_state(ANNOUNCED, {"announced": announced, "probe": record["id"]})
    if store is not None:
        try:
            journal.upload_pending(store)
        except STORE_ERRORS as exc:
            store_error = f"upload: {type(exc).__name__}: {exc}"
    if store_error:
        log.warning("watch of %s: evidence store not usable, the probes wait in the journal %s: %s",
                    site.site, state_base, store_error)
    return CycleOutcome(record, results, sealed, store_error)
