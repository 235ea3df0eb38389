"""The e-bill checks against the sandbox hospital's real PostgreSQL, through the read-only account
and the canonical views: the clean sandbox is OK everywhere, each staged trouble
(sandbox/scenarios_db.py) gives the expected WARN or FAIL, and the checks are OK again once it is
taken out.

The generated data end when the sandbox was loaded ("data end"), and hold no interface failure in
the two days before. Checks are therefore run at a chosen moment inside that history: the latest
noon before the data end, with a four-hour window (08:00-12:00, when outpatient, registration and
check-up counters are all busy, so every interface has calls); troubles are staged at that moment
too. One test stages a trouble at the real present and runs the check on the default clock.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from config.settings import Site, load_site
from sandbox import scenarios_db
from sandbox.ebill_catalog import PLACES, current_codes
from tasks.connect.database import connect
from tasks.inspection.ebill import bill_stock, finance_backlog, interface_calls, site_now
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status

pytestmark = pytest.mark.sandbox
TARGETS = ["his_api", "sign_server", "finance", "delivery"]


@pytest.fixture()
def site(sites_dir) -> Site:
    # A patient connect timeout: on a loaded test machine the sandbox's server may take more
    # than the site file's 10 s to fork a session, which is not what these tests are about.
    demo = load_site("demo")
    return demo.model_copy(update={"database": demo.database.model_copy(update={"connect_timeout_s": 60})})


@pytest.fixture()
def wide(site) -> Site:
    """The demo site with a four-hour interface window (see the module's docstring)."""
    return site.model_copy(update={"thresholds": site.thresholds.model_copy(update={"interface_window_minutes": 240})})


@pytest.fixture()
def busy_now(site) -> datetime:
    with connect(site.database) as db:
        end = db.query("SELECT MAX(req_time) AS t FROM ebill_call_log WHERE result_code = 'S0000'")[0]["t"]
    noon = end.replace(hour=12, minute=0, second=0, microsecond=0)
    return noon if noon <= end else noon - timedelta(days=1)


def by_target(records: list[CheckResult]) -> dict[str, CheckResult]:
    errors = [r.reason for r in records if r.status == Status.ERROR]
    assert not errors, errors
    targets = [r.target for r in records]
    assert len(targets) == len(set(targets)), targets
    return {r.target: r for r in records}


def statuses(records: list[CheckResult]) -> dict[str, Status]:
    return {t: r.status for t, r in by_target(records).items()}


def stat(record: CheckResult, key: str = "calls"):
    """A figure of the window's aggregate, as the record's raw evidence holds it."""
    return json.loads(record.raw)["stats"][key]


def calls_of(record: CheckResult) -> int:
    return stat(record, "calls")


def test_clean_sandbox_is_ok_for_every_interface_backlog_and_stock_point(site, wide, busy_now):
    calls = by_target(interface_calls.fn(wide, busy_now))
    assert list(calls) == TARGETS
    for target, rec in calls.items():
        assert (rec.status, rec.code) == (Status.OK, Code.OK), (target, rec.reason)
        assert rec.value == 100.0 and calls_of(rec) >= 3, (target, rec.reason)
        assert rec.title.startswith("接口调用（") and "P95" in rec.reason
    assert 80 < stat(calls["his_api"], "mean_ms") < 400 and stat(calls["sign_server"], "mean_ms") < 200

    backlog = by_target(finance_backlog.fn(site, busy_now))
    assert {t: (r.status, r.value) for t, r in backlog.items()} == {"upload": (Status.OK, 0), "archive": (Status.OK, 0)}

    stock = by_target(bill_stock.fn(site, busy_now))
    expected = {f"{place}/{code}" for place, code in current_codes(busy_now.year).items()}
    assert set(stock) == expected  # every active point with its current code; 停用 MZ09 left out
    assert not {p.code for p in PLACES if not p.active} & {t.split("/")[0] for t in stock}
    for target, rec in stock.items():
        assert rec.status == Status.OK and rec.value > 0 and "约可用" in rec.reason, (target, rec.reason)


def test_failing_signing_server_fails_and_recovers(wide, busy_now):
    before = by_target(interface_calls.fn(wide, busy_now))
    with scenarios_db.failing_interface("sign_server", n_fail=5, n_ok=20, at=busy_now):
        during = by_target(interface_calls.fn(wide, busy_now))
    after = by_target(interface_calls.fn(wide, busy_now))
    sign = during["sign_server"]
    assert (sign.status, sign.code) == (Status.FAIL, Code.INTERFACE_SUCCESS_LOW), sign.reason
    assert calls_of(sign) == calls_of(before["sign_server"]) + 25 and sign.value < 98
    assert {t: r.status for t, r in during.items() if t != "sign_server"} == {t: Status.OK for t in TARGETS[:1] + TARGETS[2:]}
    assert statuses(list(after.values())) == {t: Status.OK for t in TARGETS}
    assert calls_of(after["sign_server"]) == calls_of(before["sign_server"])


def test_one_failure_in_a_hundred_his_calls_is_a_warning(wide, busy_now):
    clean = calls_of(by_target(interface_calls.fn(wide, busy_now))["his_api"])
    assert clean < 99  # so that the staged calls make exactly 100 with one failure
    with scenarios_db.failing_interface("his_api", n_fail=1, n_ok=99 - clean, at=busy_now):
        his = by_target(interface_calls.fn(wide, busy_now))["his_api"]
    assert (his.status, his.code, his.value, calls_of(his)) == (Status.WARN, Code.INTERFACE_SUCCESS_LOW, 99.0, 100), his.reason
    assert by_target(interface_calls.fn(wide, busy_now))["his_api"].status == Status.OK


def test_delivery_failures_warn_but_never_fail(wide, busy_now):
    with scenarios_db.failing_interface("delivery", n_fail=40, n_ok=0, at=busy_now):
        delivery = by_target(interface_calls.fn(wide, busy_now))["delivery"]
    assert (delivery.status, delivery.code) == (Status.WARN, Code.INTERFACE_SUCCESS_LOW) and delivery.value < 50
    assert "警告 < 99%" in delivery.threshold and "异常" not in delivery.threshold
    assert by_target(interface_calls.fn(wide, busy_now))["delivery"].status == Status.OK


def test_slow_finance_platform_warns_on_latency(wide, busy_now):
    with scenarios_db.slow_interface("finance", ms=3000, n=60, at=busy_now):
        fin = by_target(interface_calls.fn(wide, busy_now))["finance"]
    assert (fin.status, fin.code, fin.value) == (Status.WARN, Code.INTERFACE_LATENCY_HIGH, 100.0), fin.reason
    assert "最长 3000 ms" in fin.reason
    assert by_target(interface_calls.fn(wide, busy_now))["finance"].status == Status.OK


def test_low_and_exhausted_stock(site, busy_now):
    clean = by_target(bill_stock.fn(site, busy_now))
    mz02 = next(t for t in clean if t.startswith("MZ02/"))
    gh01 = next(t for t in clean if t.startswith("GH01/"))
    with scenarios_db.low_stock("MZ02") as staged:
        low = by_target(bill_stock.fn(site, busy_now))
    [(code, left)] = staged.info["remaining"].items()
    assert mz02 == f"MZ02/{code}" and 0 < left < staged.info["warn"][code]
    assert (low[mz02].status, low[mz02].code, low[mz02].value) == (Status.WARN, Code.STOCK_BELOW_WARNING, left)
    assert all(r.status == Status.OK for t, r in low.items() if t != mz02)
    with scenarios_db.low_stock("GH01", remaining=0):
        empty = by_target(bill_stock.fn(site, busy_now))[gh01]
    assert (empty.status, empty.code, empty.value) == (Status.FAIL, Code.STOCK_EXHAUSTED, 0), empty.reason
    with pytest.raises(RuntimeError, match="the test body failed"):  # undone even then
        with scenarios_db.low_stock("ZY01", remaining=1):
            raise RuntimeError("the test body failed")
    after = by_target(bill_stock.fn(site, busy_now))
    assert {t: (r.status, r.value) for t, r in after.items()} == {t: (r.status, r.value) for t, r in clean.items()}


def test_finance_backlog_lists_old_bills_by_key_only(site, busy_now):
    with scenarios_db.finance_backlog(3, hours_old=30, failed=1, at=busy_now) as staged:
        during = by_target(finance_backlog.fn(site, busy_now))
    upload = during["upload"]
    assert (upload.status, upload.code, upload.value) == (Status.WARN, Code.FINANCE_BACKLOG, 3), upload.reason
    assert json.loads(upload.raw)["failed"] == 1  # one of them refused by the finance platform
    for code, no in staged.keys:
        assert f"{code}-{no}" in upload.reason and no in upload.raw
    assert (during["archive"].status, during["archive"].value) == (Status.OK, 0)
    # younger than th.backlog_hours (24): still in time, not a backlog
    with scenarios_db.finance_backlog(2, hours_old=2, at=busy_now):
        young = by_target(finance_backlog.fn(site, busy_now))
    assert {t: r.status for t, r in young.items()} == {"upload": Status.OK, "archive": Status.OK}
    assert {t: r.value for t, r in by_target(finance_backlog.fn(site, busy_now)).items()} == {"upload": 0, "archive": 0}


def test_troubles_of_the_present_are_seen_on_the_default_clock(site):
    # Staged at the hospital's present (Asia/Shanghai) and checked with now=None: a window taken
    # on any other clock (the worker's, the database server's) would miss these rows.
    # Before and after are compared at one pinned moment: on the moving clock a generated call
    # could leave the window in between.
    pinned = site_now(site)
    before = by_target(interface_calls.fn(site, pinned))["his_api"]
    # more failures than the calls already in the window (production traffic of earlier tests)
    n_fail = max(30, calls_of(before) + 1) if before.raw and json.loads(before.raw)["stats"] else 30
    with scenarios_db.failing_interface("his_api", n_fail=n_fail, n_ok=0):
        during = by_target(interface_calls.fn(site))["his_api"]
    after = by_target(interface_calls.fn(site, pinned))["his_api"]
    assert (during.status, during.code) == (Status.FAIL, Code.INTERFACE_SUCCESS_LOW), during.reason
    assert during.value < 50 and calls_of(during) >= n_fail, during.reason
    assert (after.status, after.value, after.raw) == (before.status, before.value, before.raw)


def test_unreachable_database_is_one_error_per_check(sites_dir, unused_port):
    name = sites_dir("deaddb", edit=lambda d: d["database"].update(
        dsn=f"host=127.0.0.1 port={unused_port} dbname=ebill", connect_timeout_s=3))
    dead = load_site(name)
    for task in (interface_calls, finance_backlog, bill_stock):
        [rec] = task.fn(dead)
        assert (rec.status, rec.code, rec.target) == (Status.ERROR, Code.DATABASE_UNREACHABLE, "database"), rec
        assert str(unused_port) in rec.reason and "DatabaseError" in rec.reason
