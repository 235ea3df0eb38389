"""The objective rows of QH 3.4 服务商监督考核评价打分表, pre-filled with the figures they need.

The score itself is the hospital's (考核评价小组): the report gives each row the figures from the
evidence and leaves the score blank; rows the evidence cannot speak to (hotline, on-site service,
training, the engineers' skill) say so instead of guessing. The grade rule is the tender's:
A ≥ 90, B 80-89, C < 80 (average of the rows); two months of C in a row may end the contract.
"""
from __future__ import annotations

from statistics import median

from tasks.report.availability import GOAL_PCT, Availability
from tasks.report.due import DueSummary
from tasks.report.findings import Finding, Proposal

RESPONSE_GOAL_MIN = 10   # QH: 接报修后电话、远程响应时间不超过10分钟
NOT_IN_EVIDENCE = "证据库中无此类记录，由考核评价小组根据实际情况评分"
# The rows of the tender's table, in its order; True marks the ones the evidence can fill.
ROWS = [("每次（月度）的巡检服务", True), ("热线电话技术支持服务", False), ("紧急现场服务", False),
        ("故障排除服务质量", True), ("同样问题或故障是否重复出现", True), ("问题响应及时性", True),
        ("工程师的技术水平", False), ("技术培训", False), ("数据库及系统优化服务", True),
        ("现场服务情况", False), ("服务改进措施", True)]


def _minutes(rows: list[dict], a: str, b: str) -> list[float]:
    from datetime import datetime
    out = []
    for r in rows:
        if r[a] and r[b]:
            out.append((datetime.fromisoformat(r[b]) - datetime.fromisoformat(r[a])).total_seconds() / 60)
    return out


def kpi_rows(due: DueSummary, found: list[Finding], ledger: list[dict], proposals: list[Proposal],
             avail: Availability, verifications: dict, records: dict, alerting: bool = True) -> list[dict]:
    """One dict per row of the table: {row, figures, evidence (bool)}."""
    monthly = due.counts("inspection", "monthly")
    quarterly = due.counts("inspection", "quarterly")
    pre = due.counts("holiday_precheck")
    restored = [r for r in ledger if r["restored"]]
    hours = [r["hours"] for r in restored if r["hours"] is not None]
    respond = _minutes(ledger, "reported", "responded")
    recurring = [p for p in proposals if p.findings >= 2]
    # Alerts go out at the end of the run that finds a problem, only where the site has notify targets.
    told = (f"告警于发现时即时发送（要求 ≤ {RESPONSE_GOAL_MIN} 分钟）" if alerting else
            "站点未配置告警接收群（notify），发现的问题未自动通知工程师")
    av = ("可用率 " + (f"{avail.overall_pct:.2f}%" if avail.overall_pct is not None else "无数据")
          + f"（目标 ≥ {GOAL_PCT:g}%，来源：{'接口与功能监测' if avail.source == 'watch' else '巡检抽样，非持续监测' if avail.source == 'inspection_samples' else '无监测数据'}）")
    figures = {
        "每次（月度）的巡检服务": (f"月度巡检应做 {monthly['due']} 次：按时 {monthly['on_time']}，逾期 {monthly['late']}，缺失 {monthly['missing']}；"
                         f"季度巡检应做 {quarterly['due']} 次：按时 {quarterly['on_time']}，缺失 {quarterly['missing']}；"
                         f"节前巡检应做 {pre['due']} 次：按时 {pre['on_time']}，逾期 {pre['late']}，缺失 {pre['missing']}"),
        "故障排除服务质量": (f"故障 {len(ledger)} 起，已恢复 {len(restored)} 起"
                      + (f"，恢复时长中位数 {median(hours):.1f} 小时、最长 {max(hours):.1f} 小时" if hours else "")
                      + f"；{av}"),
        "同样问题或故障是否重复出现": (f"重复出现的问题 {len(recurring)} 项" + ("：" + "；".join(f"{p.title} {p.item} {p.findings} 次" for p in recurring[:5])
                                                              if recurring else "") + f"；全部发现 {len(found)} 项"),
        "问题响应及时性": ((f"故障响应（发现后首次复查）中位数 {median(respond):.0f} 分钟、最长 {max(respond):.0f} 分钟；"
                     f"{told}") if respond else f"本期无需响应的故障；{told}"),
        "数据库及系统优化服务": (f"备份恢复验证应做 {verifications['due']} 次，通过 {verifications['passed']} 次；"
                        f"技术年结记录 {records['year_end']} 份，迁移记录 {records['migration']} 份；"
                        f"数据质量检查应做 {due.counts('invoice_quality')['due']} 次，完成 "
                        f"{due.counts('invoice_quality')['on_time'] + due.counts('invoice_quality')['late']} 次"),
        "服务改进措施": f"根据反复出现的问题提出改进建议 {len(proposals)} 条（见“改进建议”）",
    }
    return [{"row": name, "evidence": filled, "figures": figures.get(name, NOT_IN_EVIDENCE)} for name, filled in ROWS]
