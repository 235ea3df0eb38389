"""`ebops schedule SITE`: every deployment of the site (deployments/serve.py) with its schedule as
written and its next runs from Prefect's own schedule, from a pinned day (clock.backdated, the
records' clock) and from the real clock; the pre-holiday section is still there; a bad site is one
line. The demo site reads a stand-in sandbox variables file (no sandbox is started)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from deployments import schedules
from flows.cli_schedule import DEPLOYMENT_DUTY_ZH, next_runs
from tasks.core import clock
from tests.unit.test_site_variables_env import _sandbox_dir

TZ = ZoneInfo("Asia/Shanghai")
PINNED = datetime(2026, 6, 1, 8, 30, tzinfo=TZ)


@pytest.fixture
def demo_site(tmp_path, monkeypatch):
    monkeypatch.delenv("EBOPS_SITES_DIR", raising=False)
    monkeypatch.setenv("EBOPS_SANDBOX_DIR", str(_sandbox_dir(tmp_path)))
    return "demo"


def _run(*args: str, at: datetime | None = None):
    from flows.cli import app

    if at is None:
        return CliRunner().invoke(app, ["schedule", *args])
    with clock.backdated(at):
        return CliRunner().invoke(app, ["schedule", *args])


def _json(*args: str, at: datetime | None = None) -> dict:
    res = _run(*args, "--format", "json", at=at)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_every_deployment_of_the_demo_site_is_listed_with_its_next_runs_after_now(demo_site):
    from deployments.serve import deployments

    data = _json(demo_site, at=PINNED)
    served = {d.name: d for d in deployments(demo_site, today=PINNED.date(), notes={})}
    listed = {d["name"]: d for d in data["deployments"]}
    assert set(listed) == set(served) and len(listed) >= 10
    for name, d in listed.items():
        assert d["duty"] == DEPLOYMENT_DUTY_ZH[name.removesuffix(f"-{demo_site}")], name   # a Chinese term for each
        if not served[name].schedules:
            assert d["manual_only"] and d["next_runs"] == [] and d["schedules"] == [], name
            continue
        runs = [datetime.fromisoformat(r) for r in d["next_runs"]]
        assert runs and runs == sorted(runs) and all(r > PINNED for r in runs), name
        assert all(r.utcoffset() == timedelta(hours=8) for r in runs) and d["timezone"] == "Asia/Shanghai", name
        assert len(runs) == 3 or d["schedules"][0].startswith("DTSTART:"), name   # a planned-dates set may hold fewer
    assert listed["migration-demo"]["manual_only"]
    assert listed["service-report-half-demo"]["schedules"] == ["cron 0 8 5 1,7 *"]
    assert listed["service-report-half-demo"]["next_runs"] == [
        "2026-07-05T08:00:00+08:00", "2027-01-05T08:00:00+08:00", "2027-07-05T08:00:00+08:00"]
    assert listed["watch-demo"]["next_runs"][0] == "2026-06-01T08:35:00+08:00"
    assert listed["invoice-quality-demo"]["next_runs"][0] == "2026-06-02T06:00:00+08:00"
    assert listed["backup-verification-demo"]["next_runs"][0] == "2026-07-01T02:00:00+08:00"
    assert data["now"].startswith("2026-06-01T08:3")


def test_the_table_shows_schedules_as_written_next_runs_and_still_the_pre_holiday_section(demo_site):
    res = _run(demo_site, at=PINNED)
    assert res.exit_code == 0, res.output
    out = res.stdout
    for text in ("service-report-half-demo", "半年度服务报告", "cron 0 8 5 1,7 *", "2026-07-05 Sun 08:00",
                 "2027-01-05 Tue 08:00", "migration-demo", "手动触发", "RDATE:", "Asia/Shanghai",
                 "pre-holiday checks (2 workdays before, Asia/Shanghai)", "RRULE (Asia/Shanghai): DTSTART:"):
        assert text in out, text
    # each pre-holiday note once: in its own section, not again under the deployments
    assert not any(line.startswith("note: pre-holiday") for line in out.splitlines())


def test_a_cron_of_january_and_july_fires_on_the_5th_at_8_in_shanghai_whatever_the_start_zone():
    start = datetime(2026, 12, 2, 18, 43, tzinfo=timezone.utc)   # 2026-12-03 02:43 in Shanghai
    runs = next_runs(schedules.half_year_report(), start, 3)
    assert [f"{r:%Y-%m-%d %H:%M %z}" for r in runs] == [
        "2027-01-05 08:00 +0800", "2027-07-05 08:00 +0800", "2028-01-05 08:00 +0800"]
    # 08:00 in Shanghai is midnight UTC: a minute later the January run is past (in UTC it would not be)
    [nxt] = next_runs(schedules.half_year_report(), datetime(2027, 1, 5, 0, 1, tzinfo=timezone.utc), 1)
    assert f"{nxt:%Y-%m-%d %H:%M %Z}" == "2027-07-05 08:00 CST"


def test_with_the_real_clock_it_prints_every_deployment_without_crashing(demo_site):
    """Whatever today is (2026-12-02 when written: 2027 is only a template and 2028 unknown)."""
    now = datetime.now(timezone.utc)
    data = _json(demo_site, "--next", "2")
    today = now.astimezone(TZ).date()
    assert today >= date(2026, 12, 2) - timedelta(days=1)
    for d in data["deployments"]:
        runs = [datetime.fromisoformat(r) for r in d["next_runs"]]
        assert all(r >= now - timedelta(seconds=1) for r in runs) and len(runs) <= 2, d["name"]
        if d["schedules"] and d["schedules"][0].startswith("cron"):
            assert len(runs) == 2, d["name"]
    res = _run(demo_site)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output


def test_a_bad_site_name_is_one_line_with_a_hint(demo_site):
    res = _run("no-such-hospital")
    assert res.exit_code == 2 and "site file not found" in res.stderr and "known sites" in res.stderr, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
