"""The service report's pure parts: periods, what is due, findings' open time and recurrence, the
watch reader's expected shape, growth forecasts, the ledger's columns, the charts as PNG. The
bundles here are built in memory (the integration test reads real ones from the sandbox's S3)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from tasks.core import clock
from tasks.core.results import utcnow
from tasks.report import charts
from tasks.report.availability import availability
from tasks.report.collect import BadPeriod, Bundle, parse_period
from tasks.report.due import compare, due_runs
from tasks.report.findings import findings, proposals
from tasks.report.ledger import COLUMNS, ledger_rows, ledger_xlsx

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)


def _bundle(n: int, duty: str, records: list[tuple[str, str, str]], at: datetime | None = None) -> Bundle:
    at = at or T0 + timedelta(days=n)
    return Bundle(prefix=f"s/{duty}/2026/{n}/", site="s", duty=duty, period="", verdict="OK", started_at=at,
                  finished_at=at, sequence=n, manifest_sha256="x", backdated=False,
                  results=[{"check": c, "title": c, "host": "h", "target": t, "status": s, "reason": f"r{n}",
                            "code": "" if s == "OK" else "disk_usage_high", "finished_at": at.isoformat()}
                           for c, t, s in records])


@pytest.mark.parametrize("text,first,end", [("2026H2", date(2026, 7, 1), date(2027, 1, 1)),
                                            ("2026q4", date(2026, 10, 1), date(2027, 1, 1)),
                                            ("2026-11", date(2026, 11, 1), date(2026, 12, 1))])
def test_periods(text, first, end):
    p = parse_period(text)
    assert (p.first, p.end) == (first, end)


@pytest.mark.parametrize("bad", ["2026H3", "2026", "26-11", "2026-13"])
def test_bad_period_names_the_forms(bad):
    with pytest.raises(BadPeriod, match="hint: 2026H2"):
        parse_period(bad)


def test_due_in_2026h2_follows_the_schedules_and_the_holiday_calendar():
    p = parse_period("2026H2")
    start, end = p.bounds("Asia/Shanghai")
    runs = due_runs(start, end)
    count = lambda duty, kind=None: sum(1 for r in runs if r.duty == duty and (kind is None or r.kind == kind))  # noqa: E731
    assert count("invoice_quality") == 184 and count("inspection", "monthly") == 6 and count("inspection", "quarterly") == 2
    # 国庆 (from the calendar) has a pre-holiday check two workdays before it
    assert any(r.duty == "holiday_precheck" and r.period.startswith("2026-10-01") for r in runs)
    assert [r.period for r in runs if r.duty == "backup_verification"] == ["2026-Q3", "2026-Q4"]


def test_compare_on_time_late_missing_and_extra():
    start = datetime(2026, 11, 1, tzinfo=TZ)
    runs = [r for r in due_runs(start, start + timedelta(days=3)) if r.duty == "invoice_quality"]
    assert [r.period for r in runs] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    b = lambda period, at, prefix: {"duty": "invoice_quality", "period": period, "started_at": at.isoformat(),  # noqa: E731
                                    "prefix": prefix, "verdict": "OK"}
    got = compare(runs, [b("2026-10-31", runs[0].due_at, "a"), b("2026-11-01", runs[1].due_at + timedelta(days=2), "b"),
                         b("2026-10-31", runs[0].due_at + timedelta(hours=1), "c")])
    assert [r.state for r in got.rows] == ["on_time", "late", "missing"]
    assert [e["prefix"] for e in got.extra] == ["c"]


def test_a_finding_opens_stays_open_over_runs_and_closes_on_the_next_ok():
    bundles = [_bundle(0, "inspection", [("disk_usage", "/u01", "OK")]),
               _bundle(1, "inspection", [("disk_usage", "/u01", "FAIL")]),
               _bundle(2, "inspection", [("disk_usage", "/u01", "WARN")]),
               _bundle(3, "invoice_quality", [("invoice_quality", "DQ01", "OK")]),   # another item: no effect
               _bundle(4, "holiday_precheck", [("disk_usage", "/u01", "OK")]),     # the same catalogue closes it
               _bundle(5, "inspection", [("disk_usage", "/u01", "SKIPPED")])]       # not checked: opens nothing
    [f] = findings(bundles)
    assert (f.opened.prefix, f.closed.prefix, len(f.seen), f.worst) == (bundles[1].prefix, bundles[4].prefix, 2, "FAIL")
    assert f.open_hours(T0) == 72.0
    rows = ledger_rows([f], "Asia/Shanghai")
    assert [(r["reported"], r["responded"], r["restored"]) for r in rows] == [("2026-11-03 10:00", "2026-11-04 10:00", "2026-11-06 10:00")]
    assert proposals([f]) == []    # two runs open, once: not recurring


def test_recurring_findings_become_proposals():
    seq = ["WARN", "OK", "WARN", "OK"]
    found = findings([_bundle(i, "inspection", [("disk_usage", "/u01", s)]) for i, s in enumerate(seq)])
    [p] = proposals(found)
    assert (p.findings, p.check) == (2, "disk_usage") and "扩容" in p.advice


def test_watch_reader_expected_shape_and_honest_fallback():
    probes = [("ebill_function", "开票（issue）", s) for s in ["OK"] * 99 + ["FAIL"]]
    watch = _bundle(0, "watch", probes)
    av = availability([watch], "Asia/Shanghai")
    assert (av.source, av.overall_pct, av.per_function["开票（issue）"]["probes"]) == ("watch", 99.0, 100)
    assert av.meets_goal is True
    sampled = availability([_bundle(1, "inspection", [("ebill_function", "查询（query）", "OK")])], "Asia/Shanghai")
    assert sampled.source == "inspection_samples"
    assert availability([], "Asia/Shanghai").source == "none"


def test_growth_reaches_threshold_at_the_current_rate():
    pts = [(T0 + timedelta(days=d), 50.0 + d) for d in range(0, 11)]   # one point a day
    rate, at = charts.reach_date(pts, 80.0)
    assert rate == pytest.approx(1.0) and at == T0 + timedelta(days=30)
    assert charts.reach_date([(T0, 50.0), (T0 + timedelta(days=1), 50.0)], 80.0)[1] is None


def test_ledger_xlsx_has_the_columns_and_charts_are_png():
    wb = load_workbook(BytesIO(ledger_xlsx([], "医院", "2026年11月")))
    assert [c.value for c in wb.active[2]] == COLUMNS
    assert charts.findings_chart({"2026-11": {"WARN": 2}})[:4] == b"\x89PNG"
    assert charts.availability_chart(availability([], "Asia/Shanghai"))[:4] == b"\x89PNG"


def test_backdated_clock_shifts_and_restores():
    at = datetime(2026, 11, 1, 9, 0, tzinfo=TZ)
    with clock.backdated(at):
        assert abs((utcnow() - at).total_seconds()) < 5
    assert clock.backdated_by() == timedelta(0) and utcnow() > at + timedelta(days=1)
    with pytest.raises(ValueError, match="aware"):
        with clock.backdated(datetime(2026, 11, 1)):
            pass


def test_watch_day_bundles_availability_json_shape_and_outages_in_the_ledger():
    day = _bundle(0, "watch", [])
    day.period = "2026-11-20"
    day.files["availability.json"] = {"day": "2026-11-20", "functions": {
        "issue": {"name_zh": "开票", "probes": 288, "up": 286, "down": 2, "availability_pct": 99.306,
                  "outages": [{"from": "2026-11-20 10:05:00", "to": "2026-11-20 10:15:00", "minutes": 10.0,
                               "ended": "recovered", "code": "function_down", "reason": "HTTP 503"}]},
        "query": {"name_zh": "查询", "probes": 288, "up": 0, "down": 0, "availability_pct": None, "outages": []}}}
    av = availability([day], "Asia/Shanghai")
    assert (av.source, av.per_function["开票（issue）"], av.per_day["2026-11-20"]["pct"]) == \
        ("watch", {"up": 286, "probes": 288, "pct": 99.306}, 99.306)
    assert "查询（query）" not in av.per_function      # nothing judged: not counted as available
    [row] = ledger_rows([], "Asia/Shanghai", av.outages)
    assert (row["reported"], row["restored"], row["hours"], row["where"]) == \
        ("2026-11-20 10:05", "2026-11-20 10:15", 0.17, "开票（issue）")
    assert charts.availability_chart(av)[:4] == b"\x89PNG"
