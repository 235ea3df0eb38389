"""One run of a duty per site at a time (issue 13's fault list): a Prefect global concurrency limit
per site and duty, held for the body of each run (flows.duty_slot.duty_slot).

Under the Prefect harness (or the shared server) against the sandbox hospital. The demo site's file
under a site id of this test's own: other test runs on a shared server inspect "demo" too, and would
take the same slot and the same evidence chain.
"""
from __future__ import annotations

import contextvars
import json
import logging
import secrets
import threading
import time
from datetime import datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.exceptions import ObjectNotFound

import flows.common
import flows.duty_slot
import flows.inspection
from config.settings import load_site
from flows.duty_slot import DutyBusy, slot_name
from flows.fleet import FleetFailed, fleet_inspection
from flows.inspection import inspection, positions_file
from tasks.evidence.store import MANIFEST, open_store
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox

RUNS_WITHIN_S = 900  # two inspections one after the other on a loaded 2-core machine, with room
WAIT_FOR_OTHER_S = 60  # the other flow run starts and reaches the slot within this, also on a loaded machine


def _site(make_site) -> str:
    return make_site("slot" + secrets.token_hex(3))


def _bundles(site: str, duty: str) -> list[dict]:
    """Every stored bundle of the site's duty, by sequence: its manifest, result.json and the
    time the store has for its manifest."""
    store = open_store(load_site(site).evidence)
    out = []
    for o in store.list(f"{site}/{duty}/"):
        if o.object_name.endswith("/" + MANIFEST):
            prefix = o.object_name[: -len(MANIFEST)]
            out.append({"prefix": prefix, "manifest": json.loads(store.get(o.object_name)), "stored_at": o.last_modified,
                        "result": json.loads(store.get(prefix + "result.json"))})
    return sorted(out, key=lambda b: b["manifest"]["sequence"])


def _limit(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def _logs(flow_run_id: str, containing: str, at_least: int, within_s: float = 30) -> list[str]:
    """The run's log lines holding `containing`, once there are `at_least` (logs reach the API in
    batches), or whatever there is at the deadline."""
    deadline = time.monotonic() + within_s
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        found = [entry.message for entry in logs if containing in entry.message]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.5)  # polling the API for the batch, with a deadline


class _Said(logging.Handler):
    """Sets `event` when a run logs a line holding `words`."""

    def __init__(self, words: str):
        super().__init__(logging.WARNING)
        self.words, self.event = words, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.event.set()


def test_two_inspections_of_one_site_take_turns(prefect_harness, sites_dir, monkeypatch):
    site = _site(sites_dir)
    with pytest.raises(ObjectNotFound):
        _limit(slot_name(site, "inspection"))  # made by the first run that needs it
    # An inspection of the sandbox takes a second or two, less than starting a flow run: the first
    # run to read its log positions keeps going only once the other has said it waits (or after
    # WAIT_FOR_OTHER_S, when without the slot the other runs right beside it), so they surely meet.
    said = _Said("waits for it")
    runs_logger = logging.getLogger("prefect.flow_runs")
    runs_logger.addHandler(said)
    monkeypatch.setattr(runs_logger, "level", min(runs_logger.level or logging.WARNING, logging.WARNING))
    real_load, first_in = flows.inspection.load_positions, threading.Lock()

    def load_positions(path):
        if first_in.acquire(blocking=False):
            said.event.wait(WAIT_FOR_OTHER_S)
        return real_load(path)

    monkeypatch.setattr(flows.inspection, "load_positions", load_positions)
    gate = threading.Barrier(2)
    states: list = [None, None]

    def one(i: int) -> None:
        gate.wait(timeout=60)
        states[i] = inspection(site=site, kind="adhoc", return_state=True)

    # Each thread in a copy of this context: the harness's API URL is a context setting.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(one, i), name=f"inspection-{i}")
               for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(RUNS_WITHIN_S)
    finally:
        runs_logger.removeHandler(said)
    assert not any(t.is_alive() for t in threads), "the two inspections did not end (a deadlock?)"
    # The verdict is the sandbox's (a new site id reads every log from its start); both ran to the end.
    for st in states:
        assert not isinstance(st.result(raise_on_failure=False), DutyBusy), st.message

    first, second = _bundles(site, "inspection")
    assert [first["manifest"]["sequence"], second["manifest"]["sequence"]] == [1, 2]
    assert second["manifest"]["prev_bundle"] == first["prefix"], second["manifest"]
    # The second run read nothing before the first had stored its bundle and saved its log positions.
    started_second = datetime.fromisoformat(second["result"]["started_at"])
    assert started_second >= datetime.fromisoformat(first["result"]["finished_at"]), (first["result"], second["result"])
    assert started_second >= first["stored_at"], (first["stored_at"], started_second)
    # ... and said in one line that it waited (the first never did).
    waited = _logs(second["result"]["flow_run_id"], "waits for it", 1)
    assert len(waited) == 1 and slot_name(site, "inspection") in waited[0], waited
    assert _logs(first["result"]["flow_run_id"], "waits for it", 0) == []

    limit = _limit(slot_name(site, "inspection"))
    assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)


def test_a_run_that_waits_too_long_ends_failed_without_evidence(prefect_harness, sites_dir, monkeypatch):
    """A slot nobody releases (a run killed hard on a server that does not expire leases): the
    single-site run and the fleet's run of the site end at the deadline, in one line with the hint,
    without evidence or saved log positions; the fleet goes on and ends Failed, not hung."""
    site = _site(sites_dir)
    name = slot_name(site, "inspection")
    monkeypatch.setattr(flows.duty_slot, "DUTY_SLOT_WAIT_S", 3)
    with get_client(sync_client=True) as client:
        flows.duty_slot.limit_of(name)
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=1))
    try:
        state = inspection(site=site, kind="adhoc", return_state=True)
        assert state.is_failed()
        busy = state.result(raise_on_failure=False)
        assert isinstance(busy, DutyBusy), busy
        assert "\n" not in str(busy) and name in str(busy) and "--active-slots 0" in str(busy), str(busy)

        with pytest.raises(FleetFailed) as failed:
            fleet_inspection(sites=[site], max_sites=2)
        (entry,) = failed.value.summary
        assert entry["verdict"] == Status.ERROR.value and "DutyBusy" in entry["reason"], entry
    finally:
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    assert _bundles(site, "inspection") == []
    assert not positions_file(load_site(site)).exists()
