"""A stopped e-bill function, from the real watch to the service report: lost availability and a
row of the 维护维修台账, built from the store alone.

The real watch flow (flows/watch.py, Prefect runs) probes a site of this module's own six times, 5
minutes apart, on 2026-11-18 from 10:00 (the hospital's time), each run under tasks/core/clock set to
its cycle's time (the clock the watch reads; no sleeps): the archive function of an app-services
process of this module's own (the shared sandbox's are never stopped) answers 503 in cycles 2-4 and
is restarted before cycle 5. The first run of 19 Nov seals the 18th into its 日运行表 bundle. Then
the worker's local files are deleted and the monthly service report's deployment runs with its
own parameters (period previous-month) at its scheduled time, 5 Dec 08:00: the report of 2026-11.
Also the sandbox's watch backfill (sandbox/backfill.backfill_watch) on a day at an hourly interval.
"""
from __future__ import annotations

import json
import shutil
import uuid
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from openpyxl import load_workbook

from config.settings import load_site
from flows.common import outbox_dir, state_dir
from flows.service_report import service_report
from flows.watch import watch
from sandbox import app_services
from tasks.core import clock
from tasks.evidence.store import open_store
from tasks.report.build import LEDGER_FILE
from tasks.report.ledger import COLUMNS
from tasks.watch.seal import day_prefix
from tests.integration.watch_helpers import Receiver, stop_function

pytestmark = pytest.mark.sandbox
TZ = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-18"
CYCLES = [datetime(2026, 11, 18, 10, 0, tzinfo=TZ) + timedelta(minutes=5 * i) for i in range(6)]
STOPPED = {1, 2, 3}          # the cycles during which archive answers 503
FUNCTION = "归档（archive）"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def history(sandbox, prefect_harness, tmp_path_factory):
    from deployments.serve import deployments

    app_root = tmp_path_factory.mktemp("report-watch-app")
    app = app_services.start(app_root)
    receiver = Receiver()
    sites = tmp_path_factory.mktemp("report-watch-sites")
    name = f"rptw-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EBOPS_SITES_DIR", str(sites))
            mp.setenv("RPTW_HOOK", f"json://127.0.0.1:{receiver.port}/")
            _site_file(sandbox, sites, name, app["health_port"])
            cfg = load_site(name)
            states = []
            for i, at in enumerate(CYCLES):
                stop_function(app_root, "archive" if i in STOPPED else None)
                with clock.backdated(at):
                    states.append(watch(site=name, return_state=True))
            stop_function(app_root, None)
            with clock.backdated(datetime(2026, 11, 19, 0, 1, tzinfo=TZ)):   # the first cycle of the next day
                watch(site=name, return_state=True)
            store = open_store(cfg.evidence)
            sealed = day_prefix(cfg, DAY)
            # the report is the store's alone: the worker's journal, state and outbox are gone
            shutil.rmtree(outbox_dir(cfg), ignore_errors=True)
            shutil.rmtree(state_dir(cfg), ignore_errors=True)
            [dep] = [d for d in deployments(name) if d.name == f"service-report-monthly-{name}"]
            with clock.backdated(datetime(2026, 12, 5, 8, 0, tzinfo=TZ)):   # its schedule's run for November
                outcome = service_report(**dep.parameters)
            yield {"cfg": cfg, "store": store, "states": states, "sealed": sealed, "report": outcome,
                   "params": dep.parameters, "alerts": receiver.about(FUNCTION)}
    finally:
        receiver.close()
        app_services.stop(app)


def _site_file(sandbox, folder, name: str, health_port: int) -> None:
    d = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    d.update(site=name, variables_from=str(sandbox["root"] / "site-vars.yaml"))
    d["evidence"]["outbox"] = str(folder / "outbox")
    d["health"]["urls"] = {k: f"http://127.0.0.1:{health_port}/health/{k}" for k in app_services.FUNCTIONS}
    d["notify"] = [{"name": "值班群", "url": {"env": "RPTW_HOOK"}}]
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")


def _probes(h) -> list[dict]:
    return [json.loads(x) for x in h["store"].get(h["sealed"] + "probes.jsonl").splitlines()]


def _archive(probe: dict) -> dict:
    [item] = [i for i in probe["items"] if i["key"] == "function:archive"]
    return item


def _figures(h) -> dict:
    return json.loads(h["store"].get(h["report"].bundle.prefix + "result.json"))["context"]["figures"]


def test_the_watch_runs_were_real_flow_runs_and_the_day_was_sealed_from_them(history):
    h = history
    assert all(not s.is_failed() for i, s in enumerate(h["states"]) if i not in STOPPED)
    assert all(s.is_failed() and "archive" in str(s.message) for i, s in enumerate(h["states"]) if i in STOPPED)
    probes = _probes(h)
    assert [p["local"][:16] for p in probes] == [c.strftime("%Y-%m-%d %H:%M") for c in CYCLES]
    assert [_archive(p)["status"] for p in probes] == ["FAIL" if i in STOPPED else "OK" for i in range(6)]
    manifest = json.loads(h["store"].get(h["sealed"] + "manifest.json"))
    assert manifest["period"] == DAY and manifest["extra"]["backdated"]["by_seconds"] > 0
    # the alert went out once at the first failed cycle, the recovery once at the next answered one
    down, up = h["alerts"]
    assert "正常 → 异常" in down and "异常 → 正常" in up


def test_the_stopped_function_is_lost_availability_of_that_day(history):
    h = history
    assert h["params"] == {"params": {"site": h["cfg"].site, "period": "previous-month"}}
    assert h["report"].bundle.prefix.split("/")[1] == "service_report"
    figures = _figures(h)
    assert figures["period"] == "2026-11" and figures["availability"]["source"] == "watch"
    up = sum(1 for i in range(len(CYCLES)) if i not in STOPPED)
    pct = round(100 * up / len(CYCLES), 3)                 # 3 of 6 cycles answered: 50.0
    assert pct == 50.0
    assert {"day": DAY, "function": FUNCTION, "up": up, "probes": len(CYCLES), "pct": pct} in \
        figures["availability"]["days_below_full"]
    assert [d for d in figures["availability"]["days_below_full"] if d["function"] != FUNCTION] == []
    assert figures["availability"]["per_function"][FUNCTION]["pct"] == pct < 100
    assert figures["availability"]["per_function"]["开票（issue）"]["pct"] == 100.0
    [rec] = [r for r in h["report"].results if r.check == "availability" and r.target == FUNCTION]
    assert rec.status.value == "FAIL" and rec.value == pct
    md = h["store"].get(h["report"].bundle.prefix + "report.md").decode("utf-8")
    assert f"| {DAY} | {FUNCTION} | {len(CYCLES)} | {up} | 50.00% |" in md


def test_the_outage_is_a_row_of_the_ledger_with_the_alert_and_the_next_ok_cycle(history):
    h = history
    probes = _probes(h)
    alerted = next(p for p in probes if "function:archive" in {c["key"] for c in p["changes"]})   # OK -> FAIL
    restored = next(p for p in probes[probes.index(alerted) + 1:] if _archive(p)["status"] == "OK")
    assert [c["to"] for c in alerted["changes"] if c["key"] == "function:archive"] == ["FAIL"]
    assert alerted["deliveries"][0]["status"] == "sent"
    wb = load_workbook(BytesIO(h["store"].get(h["report"].bundle.prefix + LEDGER_FILE)))
    rows = [dict(zip(COLUMNS, (c.value for c in r))) for r in wb["维护维修台账"].iter_rows(min_row=3)]
    [row] = [r for r in rows if r["服务器/对象"] == FUNCTION]
    assert row["故障项目"] == "电子票据功能中断" and row["故障等级"] == "异常"
    assert (row["发现/报修时间"], row["恢复时间"]) == (alerted["local"][:16], restored["local"][:16])
    assert (row["发现/报修时间"], row["恢复时间"]) == ("2026-11-18 10:05", "2026-11-18 10:20")
    assert row["处理时长（小时）"] == 0.25 and "http_status_not_2xx" in row["故障原因"]
    assert row["发现证据"] == row["恢复证据"] == h["sealed"]
    assert _figures(h)["faults"] >= 1 and _figures(h)["faults_restored"] >= 1


def test_the_backfill_runs_a_days_watch_cycles_and_the_next_days_first_seals_it(sites_dir, prefect_harness):
    """sandbox/backfill.backfill_watch at an hourly interval (a site of its own; the shared
    sandbox's functions are only read): 24 cycles of the day and the next day's 00:00 one, which seals it."""
    from sandbox.backfill import backfill_watch

    name = sites_dir(f"rptb-{uuid.uuid4().hex[:8]}", lambda d: d.setdefault("watch", {}).update(interval_minutes=60))
    day = datetime(2026, 11, 10).date()
    done = backfill_watch(name, day, day, echo=lambda _line: None)
    assert (done.cycles, done.sealed_days) == (25, ["2026-11-10"])
    cfg = load_site(name)
    prefix = day_prefix(cfg, "2026-11-10")
    av = json.loads(open_store(cfg.evidence).get(prefix + "availability.json"))
    assert (av["probes"], av["planned_probes"], av["coverage_pct"]) == (24, 24, 100.0)
    assert av["first_probe"][:16] == "2026-11-10 00:00" and av["last_probe"][:16] == "2026-11-10 23:00"
    manifest = json.loads(open_store(cfg.evidence).get(prefix + "manifest.json"))
    assert manifest["extra"]["backdated"]["by_seconds"] > 0
