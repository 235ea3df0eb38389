"""The service report's figures, records and files from the period's bundles (a pure function of
them, the period and the as-of time: the same store gives the same figures, whoever runs it)."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status
from tasks.report import charts
from tasks.report.availability import GOAL_PCT, availability
from tasks.report.checkpoints import checkpoints
from tasks.report.collect import Bundle, Period
from tasks.report.due import DUTY_ZH, compare, due_runs
from tasks.report.findings import findings, per_month, proposals
from tasks.report.kpi import kpi_rows
from tasks.report.ledger import ledger_rows, ledger_xlsx

STATE_ZH = {"on_time": "按时完成", "late": "逾期完成", "missing": "缺失"}
YEAR_END_DUTIES = ("year_end",)      # the year-end archiving's bundles (技术年结)
MIGRATION_DUTIES = ("migration",)    # the server migration's bundles (服务器迁移)
LEDGER_FILE = "维护维修台账.xlsx"


@dataclass
class Built:
    figures: dict            # result.json's `figures`: what a regenerated report must reproduce
    context: dict            # the templates' data
    records: list[CheckResult]
    files: dict[str, bytes]  # charts and the ledger


def _local(ts: datetime | str, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.astimezone(ZoneInfo(tz)).strftime(fmt)


def build(site_id: str, hospital: str, tz: str, period: Period, bundles: list[Bundle], window_start: datetime,
          as_of: datetime, workdays_before: int = 2, alerting: bool = True, keys: list[str] = ()) -> Built:
    """`keys`: the site's trusted public keys, to check the checkpoints' signatures with."""
    z = ZoneInfo(tz)
    kept = checkpoints(bundles, keys, tz)
    due = compare(due_runs(window_start, as_of, workdays_before), [b.as_row() for b in bundles])
    found = findings(bundles)
    props = proposals(found)
    avail = availability(bundles, tz)
    ledger = ledger_rows(found, tz, avail.outages)
    verif = [b for b in bundles if b.duty == "backup_verification"]
    verifications = {"due": due.counts("backup_verification")["due"], "done": len(verif),
                     "passed": sum(1 for b in verif if b.verdict == "OK")}
    records_of = {"year_end": [b for b in bundles if b.duty in YEAR_END_DUTIES],
                  "migration": [b for b in bundles if b.duty in MIGRATION_DUTIES]}
    kpi = kpi_rows(due, found, ledger, props, avail, verifications, {k: len(v) for k, v in records_of.items()},
                   alerting)
    series = charts.growth_series(bundles)
    growth = charts.growth_rows(series, tz)
    months = per_month(found, z, _months(window_start.astimezone(z), as_of.astimezone(z)))

    by_duty = []
    for duty, kind in dict.fromkeys((r.due.duty, r.due.kind) for r in due.rows):
        c = due.counts(duty, kind)
        by_duty.append({"duty": duty, "kind": kind, "title": next(r.due.title_zh for r in due.rows
                                                                  if (r.due.duty, r.due.kind) == (duty, kind)), **c})
    verdicts: dict[str, dict[str, int]] = {}
    for b in bundles:
        verdicts.setdefault(b.duty, {}).setdefault(b.verdict, 0)
        verdicts[b.duty][b.verdict] += 1
    figures = {
        "period": period.label, "window_start": window_start.isoformat(), "as_of": as_of.isoformat(),
        "bundles": len(bundles), "backdated_bundles": sum(b.backdated for b in bundles),
        "due": {f"{d['duty']}:{d['kind']}": {k: d[k] for k in ("due", "on_time", "late", "missing")} for d in by_duty},
        "due_total": due.counts(), "extra_runs": len(due.extra), "verdicts": verdicts,
        "findings": len(found), "findings_open": sum(1 for f in found if f.closed is None),
        "findings_per_month": months,
        "faults": len(ledger), "faults_restored": sum(1 for r in ledger if r["restored"]),
        "proposals": len(props),
        "availability": {"source": avail.source, "overall_pct": avail.overall_pct, "goal_pct": GOAL_PCT,
                         "per_function": avail.per_function, "days_below_full": avail.days_below_full},
        "backup_verifications": verifications,
        "year_end_records": len(records_of["year_end"]), "migration_records": len(records_of["migration"]),
        "growth": growth,
        "checkpoints": [{k: c[k] for k in ("month", "created_at", "root_sha256", "key_fingerprint", "signature", "file",
                                           "file_sha256")} for c in kept],
    }
    files = {"charts/availability.png": charts.availability_chart(avail),
             "charts/findings_per_month.png": charts.findings_chart(months),
             "charts/growth.png": charts.growth_chart(series, growth),
             LEDGER_FILE: ledger_xlsx(ledger, hospital, period.title_zh)}

    records = _records(site_id, due, avail, ledger, props)
    context = {
        "period_label": period.label, "period_zh": period.title_zh, "as_of_local": _local(as_of, tz),
        "window_local": f"{_local(window_start, tz, '%Y-%m-%d')} ~ {_local(as_of, tz)}",
        "figures": figures, "by_duty": by_duty,
        "due_rows": [{"title": r.due.title_zh, "due_local": _local(r.due.due_at, tz), "period": r.due.period,
                      "state": r.state, "state_zh": STATE_ZH[r.state], "started_local": _local(r.started_at, tz) if r.started_at else "",
                      "verdict": r.verdict, "prefix": r.prefix} for r in due.rows if r.state != "on_time" or r.due.duty != "invoice_quality"],
        "quality_on_time": due.counts("invoice_quality")["on_time"],
        "extra_runs": [{"duty_zh": DUTY_ZH.get(b["duty"], b["duty"]), "period": b["period"],
                        "started_local": _local(b["started_at"], tz), "verdict": b["verdict"], "prefix": b["prefix"]}
                       for b in due.extra],
        "findings": [{"title": f.title, "item": f.item, "worst": f.worst, "opened": _local(f.opened.at, tz),
                      "closed": _local(f.closed.at, tz) if f.closed else
                      ("未关闭（此后未再检查）" if f.last_checked == f.seen[-1].at and len(f.seen) == 1 else
                       f"未关闭（最后检查 {_local(f.last_checked, tz)}）"), "runs": len(f.seen),
                      "hours": f.open_hours(as_of), "reason": f.opened.reason[:120], "prefix": f.opened.prefix}
                     for f in found],
        "proposals": [p.__dict__ for p in props], "ledger": ledger, "ledger_file": LEDGER_FILE, "kpi": kpi,
        "availability": avail, "growth": growth, "checkpoints": kept,
        "verifications": [{"started_local": _local(b.started_at, tz), "period": b.period, "verdict": b.verdict,
                           "prefix": b.prefix} for b in verif],
        "year_end": [{"started_local": _local(b.started_at, tz), "verdict": b.verdict, "prefix": b.prefix}
                     for b in records_of["year_end"]],
        "migration": [{"started_local": _local(b.started_at, tz), "verdict": b.verdict, "prefix": b.prefix}
                      for b in records_of["migration"]],
        "bundles": [{**b.as_row(), "started_local": _local(b.started_at, tz), "duty_zh": DUTY_ZH.get(b.duty, b.duty)}
                    for b in bundles],
        "charts": {name.split("/")[-1].removesuffix(".png"): base64.b64encode(data).decode("ascii")
                   for name, data in files.items() if name.endswith(".png")},
        "font_note": charts.font_note(),
    }
    return Built(figures, context, records, files)


def _months(first: datetime, last: datetime) -> list[str]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _records(site_id: str, due, avail, ledger: list[dict], props) -> list[CheckResult]:
    """The report's own verdict, as records: duties done, availability, faults restored."""
    base = dict(site=site_id)
    c = due.counts()
    missing = [r for r in due.rows if r.state == "missing"]
    late = [r for r in due.rows if r.state == "late"]
    out = [CheckResult(**base, check="duties_done", title="应做维护工作完成情况", target="全部",
                       value=f"{c['on_time']}/{c['due']}", threshold="全部按时完成",
                       status=Status.WARN if missing or late else Status.OK,
                       code=Code.DUTY_MISSING if missing else Code.DUTY_LATE if late else Code.OK,
                       reason=(f"应做 {c['due']} 次：按时 {c['on_time']}，逾期 {c['late']}，缺失 {c['missing']}"
                               + ("；缺失：" + "、".join(f"{r.due.title_zh} {r.due.period}" for r in missing[:10]) if missing else "")))]
    if avail.source != "watch":
        out.append(CheckResult(**base, check="availability", title="系统可用率", target="全部功能",
                               value=avail.overall_pct, unit="%", threshold=f"≥ {GOAL_PCT:g}%（持续监测）",
                               status=Status.WARN, code=Code.NO_WATCH_DATA,
                               reason="本期无接口与功能监测数据，可用率未持续测量" + ("（仅有巡检抽样）" if avail.per_function else "")))
    for fn, v in avail.per_function.items():
        if avail.source == "watch" or v["pct"] is not None and v["pct"] < GOAL_PCT:
            bad = v["pct"] is not None and v["pct"] < GOAL_PCT
            out.append(CheckResult(**base, check="availability", title="系统可用率", target=fn, value=v["pct"], unit="%",
                                   threshold=f"≥ {GOAL_PCT:g}%", status=Status.FAIL if bad else Status.OK,
                                   code=Code.AVAILABILITY_BELOW_GOAL if bad else Code.OK,
                                   reason=f"{v['up']}/{v['probes']} 次探测可用"))
    open_faults = [r for r in ledger if not r["restored"]]
    out.append(CheckResult(**base, check="faults_restored", title="故障恢复情况", target="维护维修台账",
                           value=f"{len(ledger) - len(open_faults)}/{len(ledger)}", threshold="全部恢复",
                           status=Status.WARN if open_faults else Status.OK,
                           code=Code.FAULTS_OPEN if open_faults else Code.OK,
                           reason=f"故障 {len(ledger)} 起，未恢复 {len(open_faults)} 起；改进建议 {len(props)} 条"))
    return out
