"""The service report end to end: real runs backfilled at past dates into the sandbox's S3 under a
site id of this test's own, then the report built from the store alone.

History (November 2026, the hospital's time), made by the real flows against the sandbox:
- the scheduled runs of 1-7 Nov (sandbox/backfill.py): the monthly inspection on the 1st and the
  daily quality checks, except the one due on the 4th (skipped: missing) and the one due on the
  6th (run late, on the 7th at 08:00, after its one-day deadline);
- ad-hoc inspections on the 2nd, 3rd and 5th at 10:00, with lines written to an application log
  of this test's own between them: an OutOfMemoryError before the 2nd (FAIL), an ERROR before the
  3rd (WARN), nothing before the 5th (OK): one fault open over two runs, then closed.
"""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from openpyxl import load_workbook

from config.settings import load_site
from flows.common import VerdictFailed
from flows.inspection import inspection
from flows.invoice_quality import QualityParams, invoice_quality
from flows.service_report import ReportParams, service_report
from sandbox import scenarios_hosts as sc
from sandbox.backfill import backfill
from tasks.core import clock
from tasks.evidence.store import open_store
from tasks.report.ledger import COLUMNS

pytestmark = pytest.mark.sandbox
TZ = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 11, 8, 0, 0, tzinfo=TZ)


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=TZ)


def _outcome(state):
    result = state.result(raise_on_failure=False)
    return result.outcome if isinstance(result, VerdictFailed) else result


def _line(level: str, msg: str) -> str:
    return f"2026-11-01 10:00:00.000 {level} [http-nio-8080-exec-1] c.e.ebill.sign.SignClient - {msg}"


@pytest.fixture(scope="module")
def history(sandbox, prefect_harness, tmp_path_factory):
    root = Path(sandbox["root"]).resolve()
    tmp = tmp_path_factory.mktemp("report-sites")
    site = f"rpt-{uuid.uuid4().hex[:8]}"
    rel = f"logs/test-{site}.log"
    log_path = sc.append_log_errors(root, "app1", rel, [_line("INFO", "启动完成")])
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    demo.update(site=site, variables_from=str(root / "site-vars.yaml"))
    demo["evidence"]["outbox"] = str(tmp / "outbox")
    for h in demo["hosts"]:
        # Only this test's log: the shared logs get lines from everyone's runs at any time.
        h["logs"] = [{"path": str(log_path), "kind": "application", "error_patterns": ["ERROR", "Exception"],
                      "critical_patterns": ["OutOfMemoryError"]}] if h["name"] == "app1" else []
    (tmp / f"{site}.yaml").write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBOPS_SITES_DIR", str(tmp))
        ran = backfill(site, date(2026, 11, 1), date(2026, 11, 7), duties=("inspection", "invoice_quality"),
                       skip={("invoice_quality", date(2026, 11, 4)), ("invoice_quality", date(2026, 11, 6))})
        with clock.backdated(_at(7, 8)):   # the check due on the 6th (bills of the 5th), a day late
            late = _outcome(invoice_quality(params=QualityParams(site=site, start=date(2026, 11, 5)), return_state=True))
        adhoc = {}
        for day, line in ((2, _line("ERROR", "java.lang.OutOfMemoryError: Java heap space")),
                          (3, _line("ERROR", "签名失败 code=E1002")), (5, None)):
            if line:
                sc.append_log_errors(root, "app1", rel, [line])
            with clock.backdated(_at(day, 10)):
                adhoc[day] = _outcome(inspection(site=site, kind="adhoc", return_state=True))
        params = ReportParams(site=site, period="2026-11", as_of=AS_OF)
        first = _outcome(service_report(params=params, return_state=True))
        second = _outcome(service_report(params=params, return_state=True))
        yield {"site": site, "ran": ran, "late": late, "adhoc": adhoc, "first": first, "second": second,
               "store": open_store(load_site(site).evidence)}
    sc.remove_file(root, "app1", rel)


def _result(h, outcome) -> dict:
    return json.loads(h["store"].get(outcome.bundle.prefix + "result.json"))


def _log_status(outcome) -> str:
    [rec] = [r for r in outcome.results if r.check == "log_errors"]
    return rec.status.value


def test_backfilled_runs_are_real_runs_dated_back_and_say_so(history):
    assert [r.due.due_at.day for r in history["ran"] if r.due.duty == "invoice_quality"] == [1, 2, 3, 5, 7]
    [monthly] = [r for r in history["ran"] if r.due.duty == "inspection"]
    assert monthly.prefix.split("/")[3].startswith("20261101T0100")   # 09:00 in Xining is 01:00 UTC
    manifest = json.loads(history["store"].get(monthly.prefix + "manifest.json"))
    assert manifest["started_at"].startswith("2026-11-01T01:00:0")
    assert manifest["extra"]["backdated"]["by_seconds"] > 0
    # the log planted between the runs was read by the real check: FAIL, WARN, then OK
    assert [_log_status(history["adhoc"][d]) for d in (2, 3, 5)] == ["FAIL", "WARN", "OK"]


def test_due_done_late_missing_counts(history):
    figures = _result(history, history["first"])["context"]["figures"]
    assert figures["due"]["inspection:monthly"] == {"due": 1, "on_time": 1, "late": 0, "missing": 0}
    assert figures["due"]["invoice_quality:daily"] == {"due": 7, "on_time": 5, "late": 1, "missing": 1}
    assert figures["due_total"] == {"due": 8, "on_time": 6, "late": 1, "missing": 1}
    assert figures["extra_runs"] == 3            # the ad-hoc inspections
    [duties] = [r for r in history["first"].results if r.check == "duties_done"]
    assert duties.status.value == "WARN" and duties.code == "duty_missing" and "2026-11-03" in duties.reason


def test_a_fault_open_over_two_runs_then_closed(history):
    ctx = _result(history, history["first"])["context"]
    figures = ctx["figures"]
    assert figures["faults"] == 1 and figures["faults_restored"] == 1
    html = history["store"].get(history["first"].bundle.prefix + "report.html").decode("utf-8")
    assert "no watch data" in html and "维护维修台账" in html
    wb = load_workbook(BytesIO(history["store"].get(history["first"].bundle.prefix + "维护维修台账.xlsx")))
    ws = wb["维护维修台账"]
    assert [c.value for c in ws[2]] == COLUMNS
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=3)]
    [fault] = [r for r in rows if r[1] == "日志错误"]
    by = dict(zip(COLUMNS, fault))
    assert (by["发现/报修时间"], by["响应时间"], by["恢复时间"]) == ("2026-11-02 10:00", "2026-11-03 10:00", "2026-11-05 10:00")
    assert by["处理时长（小时）"] == 72.0 and "OutOfMemoryError" in by["故障原因"]
    assert by["发现证据"] == history["adhoc"][2].bundle.prefix and by["恢复证据"] == history["adhoc"][5].bundle.prefix


def test_recurring_finding_gives_an_improvement_proposal(history):
    figures = _result(history, history["first"])["context"]["figures"]
    # the 2027 holiday calendar is a template: every inspection of the month warns (4 runs)
    assert figures["proposals"] >= 1
    md = history["store"].get(history["first"].bundle.prefix + "report.md").decode("utf-8")
    assert "节假日日历覆盖" in md.split("## 五、改进建议")[1]


def test_charts_are_png_and_the_bundle_holds_every_file(history):
    prefix = history["first"].bundle.prefix
    manifest = json.loads(history["store"].get(prefix + "manifest.json"))
    names = {f["name"] for f in manifest["files"]}
    assert {"report.html", "report.md", "result.json", "维护维修台账.xlsx", "charts/availability.png",
            "charts/findings_per_month.png", "charts/growth.png"} <= names
    for chart in (n for n in names if n.startswith("charts/")):
        assert history["store"].get(prefix + chart)[:8] == b"\x89PNG\r\n\x1a\n", chart
    assert manifest["duty"] == "service_report" and manifest["period"] == "2026-11"


def test_regenerated_report_has_the_same_figures(history):
    a = _result(history, history["first"])["context"]
    b = _result(history, history["second"])["context"]
    assert history["first"].bundle.prefix != history["second"].bundle.prefix
    assert a["figures"] == b["figures"]
    # the second report did not count the first one
    assert a["bundles_read"] == b["bundles_read"]


def test_the_monthly_checkpoint_is_reprinted_from_its_bundle_in_the_store(history):
    """The signed checkpoint the monthly inspection of 1 Nov kept (checkpoint.json in its bundle) is
    listed by the report: its month, time (the backfill's clock), root, signer and where the file is."""
    from tasks.evidence.checkpoint import load_checkpoint
    from tasks.evidence.sign import fingerprint

    [monthly] = [r for r in history["ran"] if r.due.duty == "inspection"]
    cp = load_checkpoint(history["store"].get(monthly.prefix + "checkpoint.json"))
    [row] = _result(history, history["first"])["context"]["figures"]["checkpoints"]
    assert row["month"] == "2026-11" and row["created_at"] == cp["created_at"]
    assert row["created_at"].startswith("2026-11-01T01:0")
    assert (row["root_sha256"], row["file"]) == (cp["root_sha256"], monthly.prefix + "checkpoint.json")
    assert row["key_fingerprint"] == fingerprint(load_site(history["site"]).evidence.signing.public_key)
    assert row["signature"] == "valid"
    for name in ("report.html", "report.md"):
        text = history["store"].get(history["first"].bundle.prefix + name).decode("utf-8")
        assert "证据链检查点" in text and cp["root_sha256"] in text and monthly.prefix + "checkpoint.json" in text
