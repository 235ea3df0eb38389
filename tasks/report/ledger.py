"""维护维修台账 (QH: "建立完备的维护维修台账…维修台账作为付款前置条件"): one row per fault, as XLSX.

A fault is a finding whose worst record was FAIL or ERROR (a WARN is a finding to watch, not a
breakdown). Its times come from the evidence only:
- 发现/报修时间: the run that found it; where the site has notify targets, the alert digest goes out at the end of
  that run (tasks/core/alerts.py), so it is also when the engineer was told;
- 响应时间: the first later run that checked the item again, the first recorded action (a re-run by
  the engineer, or the next scheduled run); nothing earlier is in the evidence;
- 恢复时间: the first later run whose record of the item is OK (tasks/report/findings.py).
The watch's outages (a function down from its first failed probe to the first answered one, from
the day bundles' availability.json) are faults too: reported at the first failed probe (the watch
alerts on that change), restored at the first answered probe; no response time is recorded.
The cause is the first record's reason and code; the action is the engineer's to write (the row
proposes one); the IT department confirms each row (QH: 由甲方统计信息科确认).
"""
from __future__ import annotations

from io import BytesIO
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from tasks.report.findings import ADVICE, DEFAULT_ADVICE, Finding

FAULT = {"FAIL", "ERROR"}
COLUMNS = ["序号", "故障项目", "服务器/对象", "故障等级", "发现/报修时间", "响应时间", "恢复时间", "处理时长（小时）",
           "故障原因", "处理措施", "发现证据", "恢复证据", "信息科确认"]
WIDTHS = [6, 18, 40, 10, 18, 18, 18, 12, 50, 50, 60, 60, 12]
LEVEL_ZH = {"FAIL": "异常", "ERROR": "无法检查"}


def ledger_rows(found: list[Finding], tz: str, outages: list[dict] = ()) -> list[dict]:
    z = ZoneInfo(tz)

    def local(s) -> str:
        return s.at.astimezone(z).strftime("%Y-%m-%d %H:%M") if s is not None else ""

    rows = []
    for f in found:
        # a day below the availability goal is counted by its outages (below), not as a fault itself
        if f.worst not in FAULT or f.check == "watch_availability":
            continue
        responded = f.seen[1] if len(f.seen) > 1 else f.closed
        rows.append({
            "n": len(rows) + 1, "item": f.title, "where": f.item, "level": LEVEL_ZH[f.worst],
            "reported": local(f.opened), "responded": local(responded), "restored": local(f.closed),
            "hours": f.open_hours(f.closed.at) if f.closed else None,
            "cause": f"{f.opened.reason}（{f.opened.code}）" if f.opened.code else f.opened.reason,
            "action": "（工程师填写）建议：" + ADVICE.get(f.check, DEFAULT_ADVICE),
            "found_in": f.opened.prefix, "restored_in": f.closed.prefix if f.closed else "未恢复",
            "confirmed": "",
        })
    for o in outages:
        recovered = o.get("ended") == "recovered"
        rows.append({
            "n": len(rows) + 1, "item": "电子票据功能中断", "where": o["function"], "level": LEVEL_ZH["FAIL"],
            "reported": o["from"][:16], "responded": "", "restored": o["to"][:16] if recovered else "",
            "hours": round(o.get("minutes", 0) / 60, 2) if recovered else None,
            "cause": f"{o.get('reason', '')}（{o.get('code', '')}）" if o.get("code") else o.get("reason", ""),
            "action": "（工程师填写）建议：" + ADVICE["ebill_function"],
            "found_in": o["prefix"], "restored_in": o["prefix"] if recovered else "未恢复（次日证据包续记）",
            "confirmed": "",
        })
    rows.sort(key=lambda r: r["reported"])
    for i, r in enumerate(rows, start=1):
        r["n"] = i
    return rows


def ledger_xlsx(rows: list[dict], hospital: str, period_zh: str) -> bytes:
    """The ledger as an XLSX workbook (one sheet), ready for the IT department to confirm."""
    wb = Workbook()
    ws = wb.active
    ws.title = "维护维修台账"
    ws.append([f"{hospital} 电子票据系统维护维修台账（{period_zh}）"])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(COLUMNS)
    head = PatternFill("solid", fgColor="DDEBF7")
    for i, width in enumerate(WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
        cell = ws.cell(row=2, column=i)
        cell.font, cell.fill = Font(bold=True), head
    keys = ["n", "item", "where", "level", "reported", "responded", "restored", "hours", "cause", "action",
            "found_in", "restored_in", "confirmed"]
    for r in rows:
        ws.append([r[k] for k in keys])
    if not rows:
        ws.append(["", "本期无故障记录"])
    for row in ws.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A3"
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
