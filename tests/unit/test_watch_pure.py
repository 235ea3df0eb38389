"""The watch's pure parts: a day's availability and outages, the days due for sealing, and the
state-change alerting against a real HTTP receiver (apprise json://, as tests/unit/test_alerts.py)."""
from __future__ import annotations


import pytest

from config.settings import Site, WatchConfig
from tasks.watch.alerting import announce
from tasks.watch.availability import availability, day_results
from tasks.watch.seal import MAX_BACKFILL_DAYS, days_to_seal
from tests.receiver import Receiver


def _item(fn: str, status: str, reason: str = "") -> dict:
    return {"key": f"function:{fn}", "function": fn, "title": "电子票据功能可用性", "target": f"{fn}",
            "status": status, "code": "ok" if status == "OK" else "http_status_not_2xx", "reason": reason}


def _records(statuses: list[str], fn: str = "archive") -> list[dict]:
    return [{"id": f"p{n}", "local": f"2026-12-01 {10 + n // 12:02d}:{5 * (n % 12):02d}:00",
             "items": [_item(fn, s, "HTTP 503")]} for n, s in enumerate(statuses)]


def test_availability_counts_probes_and_cuts_outages_at_the_next_good_probe():
    av = availability(_records(["OK", "FAIL", "FAIL", "OK", "SKIPPED", "FAIL"]), "2026-12-01", "demo", 300)
    f = av["functions"]["archive"]
    assert (f["probes"], f["up"], f["down"], f["unknown"]) == (6, 2, 3, 1)
    assert f["availability_pct"] == 40.0 and f["down_minutes"] == 15.0
    assert [(o["from"][11:], o["to"][11:], o["minutes"], o["ended"]) for o in f["outages"]] == [
        ("10:05:00", "10:15:00", 10.0, "recovered"), ("10:25:00", "10:30:00", 5.0, "still_down")]
    assert av["functions"]["issue"]["availability_pct"] is None  # never probed: unknown, not 100 %
    assert av["planned_probes"] == 288 and av["coverage_pct"] == round(100 * 6 / 288, 2)


def test_a_day_below_the_floor_fails_and_an_unprobed_function_is_not_a_pass():
    av = availability(_records(["OK"] * 98 + ["FAIL"] * 2), "2026-12-01", "demo", 300)
    res = {r.target: r for r in day_results(av, WatchConfig())}
    assert res["归档（archive）"].status.value == "FAIL" and res["归档（archive）"].code == "availability_low"
    assert res["开票（issue）"].status.value == "SKIPPED" and res["开票（issue）"].code == "no_data"
    ok = availability(_records(["OK"] * 99 + ["FAIL"]), "2026-12-01", "demo", 300)
    assert {r.target: r for r in day_results(ok, WatchConfig())}["归档（archive）"].status.value == "OK"  # 99 % is the floor


def test_days_to_seal_from_the_first_probed_day_to_yesterday_gaps_included():
    assert days_to_seal("2026-12-04", ["2026-12-01", "2026-12-04"], []) == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert days_to_seal("2026-12-04", [], ["2026-12-03"]) == ["2026-12-03"]
    assert days_to_seal("2026-12-04", ["2026-12-04"], []) == []  # today is never sealed
    long_ago = days_to_seal("2026-12-04", ["2025-01-01"], [])
    assert len(long_ago) == MAX_BACKFILL_DAYS and long_ago[-1] == "2026-12-03"


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def _site(targets: list[dict]) -> Site:
    return Site.model_validate({
        "site": "demo", "name": "测试医院",
        "database": {"dialect": "postgresql", "dsn": "host=x", "user": "u", "password": {"env": "X"}},
        "evidence": {"endpoint": "x:1", "bucket": "ebill-evidence", "access_key": {"env": "A"}, "secret_key": {"env": "B"}},
        "notify": targets})


def test_a_change_is_announced_once_and_its_recovery_once(receiver, monkeypatch):
    monkeypatch.setenv("WATCH_HOOK", f"json://127.0.0.1:{receiver.port}/")
    site = _site([{"name": "值班群", "url": {"env": "WATCH_HOOK"}}])
    state: dict = {}
    for n, status in enumerate(["OK", "FAIL", "FAIL", "FAIL", "OK", "OK"]):
        record = {"local": f"2026-12-01 10:{5 * n:02d}:00", "items": [_item("archive", status, "HTTP 503 Service Unavailable")]}
        state, seen, deliveries = announce(site, state, record)
        assert len(deliveries) == (1 if n in (1, 4) else 0), n
    assert len(receiver.bodies) == 2
    down, up = (b["message"] for b in receiver.bodies)
    assert "正常 → 异常" in down and "HTTP 503" in down and "【异常】" in down
    assert "异常 → 正常" in up and "【恢复】" in up and "当前：全部正常" in up


def test_an_undelivered_change_is_sent_again_and_min_status_filters(receiver, monkeypatch, unused_port):
    monkeypatch.setenv("HOOK_DOWN", f"json://127.0.0.1:{unused_port}/")  # this robot's server is down
    monkeypatch.setenv("HOOK_BOSS", f"json://127.0.0.1:{receiver.port}/boss")
    site = _site([{"name": "断线群", "url": {"env": "HOOK_DOWN"}},
                  {"name": "主任", "url": {"env": "HOOK_BOSS"}, "min_status": "FAIL"}])
    warn = {"local": "2026-12-01 10:00:00", "items": [{**_item("archive", "WARN"), "key": "interface:his_api"}]}
    state, seen, deliveries = announce(site, {}, warn)
    assert [d["target"] for d in deliveries] == ["断线群"] and deliveries[0]["status"] == "failed"
    assert receiver.bodies == []  # a WARN does not reach a FAIL-only target
    assert state["断线群"] == {} and state["主任"] == {"interface:his_api": "WARN"}
    state, seen, deliveries = announce(site, state, warn)
    assert [d["target"] for d in deliveries] == ["断线群"]  # not received: tried again next cycle


@pytest.fixture()
def unused_port():
    from sandbox.ports import free_port

    return free_port()


def test_a_journal_line_cut_by_a_crash_loses_no_later_record(tmp_path):
    from tasks.watch.journal import JOURNAL, Journal

    j = Journal(tmp_path, "demo")
    j.append({"id": "a", "day": "2026-12-01"})
    with open(tmp_path / "2026-12-01" / JOURNAL, "ab") as f:
        f.write(b'{"id": "cut-by-a-cr')  # the process died here
    j.append({"id": "b", "day": "2026-12-01"})
    assert [r["id"] for r in j.records("2026-12-01")] == ["a", "b"]
    assert [r and r["id"] for r in j.records("2026-12-01", keep_cut=True)] == ["a", None, "b"]
