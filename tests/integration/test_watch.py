"""The watch (接口运维) against the sandbox hospital: its real database, its real S3 store, and an
application-services process of this module's own (sandbox.app_services, started here and stopped
by PID), whose archive function is stopped (answers 503) without touching the shared sandbox's.

Covers: a stopped function alerted once and its recovery once (a real HTTP receiver, apprise
json://), also across a worker that lost its local state (the alert state comes from the store's
newest part); the day sealed into one chained bundle by the first cycle of a later day with the
injected clock, the missed day sealed too (coverage 0 %), the availability and the outage in
availability.json; the day sealed on the real clock; probes kept while the store is down and
uploaded once it is back; the flow's Failed state while a function is stopped.
"""
from __future__ import annotations

import json
import shutil
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.settings import load_site
from sandbox import app_services
from tasks.evidence.store import open_store
from tasks.evidence.verify import show, verify
from tasks.watch.cycle import run_cycle
from tasks.watch.journal import Journal, part_key
from tasks.watch.probe import local_day
from tasks.watch.seal import day_prefix
from tests.integration.watch_helpers import Receiver, stop_function

pytestmark = pytest.mark.sandbox
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch-app")
    state = app_services.start(root)
    yield {"root": root, "port": state["health_port"]}
    app_services.stop(state)


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def watched(sites_dir, app, receiver, monkeypatch, tmp_path):
    """A site of its own (its own chain in the shared bucket) whose functions are this module's."""
    monkeypatch.setenv("WATCH_TEST_HOOK", f"json://127.0.0.1:{receiver.port}/")
    name = f"watch{uuid.uuid4().hex[:8]}"

    def edit(d):
        d["health"]["urls"] = {k: f"http://127.0.0.1:{app['port']}/health/{k}" for k in app_services.FUNCTIONS}
        d["notify"] = [{"name": "值班群", "url": {"env": "WATCH_TEST_HOOK"}}]

    site = load_site(sites_dir(name, edit))
    app_services.write_faults(app["root"], {})
    yield site, tmp_path / "state" / "watch", Path(site.evidence.outbox)
    app_services.write_faults(app["root"], {})


def _stop(app, fn: str | None) -> None:
    stop_function(app["root"], fn)


def _json(site, prefix: str, name: str):
    return open_store(site.evidence).get(prefix + name)


def test_stopped_function_alerted_once_recovery_once_and_the_day_sealed_with_its_outage(watched, app, receiver):
    site, state, outbox = watched
    now = datetime.now(timezone.utc).replace(microsecond=0)
    t = [now - timedelta(minutes=20 - 5 * i) for i in range(5)]  # five cycles, 5 minutes apart
    run_cycle(site, state, outbox, "r0", t[0])
    _stop(app, "archive")
    for i in (1, 2):
        out = run_cycle(site, state, outbox, f"r{i}", t[i])
        assert {c["key"] for c in out.record["changes"]} >= ({"function:archive"} if i == 1 else set())
    assert len(receiver.about("归档（archive）")) == 1  # the second FAIL cycle sent nothing
    shutil.rmtree(state)  # a fresh worker: the alert state comes from the newest part in the store
    out = run_cycle(site, state, outbox, "r3", t[3])
    assert "function:archive" not in {c["key"] for c in out.record["changes"]}
    assert len(receiver.about("归档（archive）")) == 1
    _stop(app, None)
    run_cycle(site, state, outbox, "r4", t[4])
    down, up = receiver.about("归档（archive）")
    assert "正常 → 异常" in down and "HTTP 503" in down and "异常 → 正常" in up

    day = local_day(t[0], site.timezone)
    if local_day(t[4], site.timezone) != day:
        pytest.skip("the five cycles straddle midnight Asia/Shanghai; run again")  # not counted as passed
    # The first cycle two days later seals the day and the missed day after it, in order.
    later = datetime.combine(date.fromisoformat(day) + timedelta(days=2), datetime.min.time(), TZ) + timedelta(minutes=1)
    sealed = run_cycle(site, state, outbox, "seal", later).sealed
    missed = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    assert [s.day for s in sealed] == [day, missed] and all(s.bundle.location == "store" for s in sealed)
    first, second = (s.bundle.prefix for s in sealed)
    assert first == day_prefix(site, day)
    av = json.loads(_json(site, first, "availability.json"))
    archive = av["functions"]["archive"]
    assert (archive["probes"], archive["up"], archive["down"]) == (5, 2, 3)
    assert archive["availability_pct"] == 40.0 and archive["down_minutes"] == 15.0
    [outage] = archive["outages"]
    local = [x.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S") for x in t]
    assert (outage["from"], outage["to"], outage["ended"], outage["code"]) == (local[1], local[4], "recovered",
                                                                               "http_status_not_2xx")
    assert av["functions"]["issue"]["availability_pct"] == 100.0
    probes = [json.loads(x) for x in _json(site, first, "probes.jsonl").splitlines()]
    assert [p["local"] for p in probes] == local and {p["flow_run_id"] for p in probes} == {f"r{i}" for i in range(5)}
    result = json.loads(_json(site, first, "result.json"))
    assert result["verdict"] == "FAIL"
    assert {(r["target"], r["code"]) for r in result["results"] if r["status"] == "FAIL"} >= {("归档（archive）", "availability_low")}
    gap = json.loads(_json(site, second, "availability.json"))
    assert gap["probes"] == 0 and gap["coverage_pct"] == 0.0
    assert {r["code"] for r in json.loads(_json(site, second, "result.json"))["results"]} >= {"watch_coverage_low", "no_data"}
    # The sealed days chain like every other bundle: sequence 1 and 2, linked, signed, intact.
    assert (show(site.evidence, first)["sequence"], show(site.evidence, second)["prev_bundle"]) == (1, first)
    report = verify(site.evidence, site=site.site, duty="watch")
    assert report.ok and report.bundles_checked == 2 and report.problems == [], report.problems
    # Sealed once: a later cycle of the same day does not seal again, nor does the next day re-seal.
    assert run_cycle(site, state, outbox, "again", later + timedelta(minutes=5)).sealed == []


def test_the_first_cycle_after_midnight_seals_yesterday_on_the_real_clock(watched):
    site, state, outbox = watched
    yesterday_noon = (datetime.now(TZ) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    run_cycle(site, state, outbox, "yesterday", yesterday_noon)
    out = run_cycle(site, state, outbox, "today")  # the real clock
    today = datetime.now(TZ).strftime("%Y-%m-%d")
    assert [s.day for s in out.sealed] == [yesterday_noon.strftime("%Y-%m-%d")]
    assert out.record["day"] == today and Journal(state, site.site).days() == [today]
    probes = _json(site, out.sealed[0].bundle.prefix, "probes.jsonl").splitlines()
    assert [json.loads(p)["flow_run_id"] for p in probes] == ["yesterday"]


def test_probes_wait_in_the_journal_while_the_store_is_down(watched, sites_dir, unused_port):
    site, state, outbox = watched
    down = load_site(sites_dir(site.site, lambda d: d["evidence"].update(endpoint=f"127.0.0.1:{unused_port}")))
    out = run_cycle(down, state, outbox, "down")
    assert out.store_error and out.record["verdict"] in ("OK", "WARN")
    journal = Journal(state, site.site)
    [rec] = journal.records(out.record["day"])
    store = open_store(site.evidence)
    assert not store.exists(part_key(site.site, rec["day"], rec["id"]))
    up = load_site(sites_dir(site.site, lambda d: d["health"]["urls"].update(site.health.urls)))
    run_cycle(up, state, outbox, "up")
    assert store.exists(part_key(site.site, rec["day"], rec["id"]))  # the waiting probe went up with the next cycle


def test_the_watch_flow_fails_while_a_function_is_stopped(watched, app, prefect_harness):
    from flows.watch import watch

    site, _, _ = watched
    _stop(app, "admin")
    state = watch(site=site.site, return_state=True)
    assert state.is_failed() and "admin" in str(state.message), state.message
    _stop(app, None)
    state = watch(site=site.site, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["verdict"] in ("OK", "WARN") and "function:admin" in [c["key"] for c in summary["changes"]]
