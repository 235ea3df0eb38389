"""The watch as `ebops ui` serves it: the deployment `watch-<site>` (every 5 minutes) on a real
Prefect server, a flow run of it picked up by the serving Runner and run inside the serving process
(deployments/warm_runner.py), not in a spawned one; a stopped function gives a Failed run and a
probe without availability. The run is created through the API rather than awaited from the
schedule (5 minutes); the schedule itself is checked in tests/unit/test_schedules_precheck.py.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import time

import pytest

from tests.integration.test_watch import _stop, app, receiver, watched  # noqa: F401 - fixtures

pytestmark = pytest.mark.sandbox
DEADLINE_S = 300


def test_a_served_watch_run_happens_in_the_serving_process(watched, app, prefect_harness):  # noqa: F811
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from deployments.serve import deployments, in_process
    from deployments.warm_runner import WarmRunner
    from flows.watch import watch_state_dir

    site, _, _ = watched
    [dep] = [d for d in deployments(site.site) if d.name == f"watch-{site.site}"]
    runner = WarmRunner(query_seconds=1, in_process=in_process([dep]))
    box: dict = {}
    registered = threading.Event()

    async def start() -> None:
        box["loop"] = asyncio.get_running_loop()
        await runner.aadd_deployment(dep)
        registered.set()
        await runner.start()

    # The test's Prefect settings (the API URL) must reach the runner's thread, as in serve_until_signal.
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=lambda: ctx.run(asyncio.run, start()), daemon=True)
    thread.start()
    try:
        assert registered.wait(120), "the watch deployment was not registered within 120 s"
        _stop(app, "reports")
        fr = run_deployment(f"watch/watch-{site.site}", timeout=0)
        deadline = time.monotonic() + DEADLINE_S
        with get_client(sync_client=True) as client:
            while not (state := client.read_flow_run(fr.id).state).is_final():
                assert time.monotonic() < deadline, f"the served watch run is still {state.type} after {DEADLINE_S} s"
                time.sleep(1)  # polling the API, with a deadline
        assert state.is_failed() and "reports" in (state.message or ""), state
        day_journals = list(watch_state_dir(site).glob("*/probes.jsonl"))
        [record] = [json.loads(line) for f in day_journals for line in f.read_text().splitlines()]
        assert record["flow_run_id"] == str(fr.id) and record["pid"] == os.getpid()  # not a spawned process
        reports = next(i for i in record["items"] if i.get("function") == "reports")
        assert reports["status"] == "FAIL" and reports["code"] == "http_status_not_2xx"
    finally:
        _stop(app, None)
        if "loop" in box and runner.started:
            asyncio.run_coroutine_threadsafe(runner.astop(), box["loop"]).result(timeout=60)
        thread.join(timeout=60)
