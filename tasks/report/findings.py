"""Findings of a period: when each opened, how long it stayed open, which recur (改进建议, MZ 一.10).

An item is a check on an object: (check, host, target), whichever duty read it (the inspection
and the pre-holiday check run the same catalogue). A finding opens at the first run whose record
of the item is not OK (WARN, FAIL or ERROR; SKIPPED is "not checked" and neither opens nor closes
one) and closes at the first later run whose record of the item is OK. A finding still open at
the report's as-of time is reported open, its age counted to then. An item with two findings or
more in the period, or one open over three runs or more, recurs: it gets an improvement proposal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tasks.report.collect import Bundle

FINDING = {"WARN", "FAIL", "ERROR"}
RANK = {"OK": 0, "WARN": 1, "SKIPPED": 2, "FAIL": 3, "ERROR": 4}
RECUR_FINDINGS = 2     # findings of one item in the period
RECUR_RUNS = 3         # runs one finding stayed open over

# What to propose when an item keeps coming back, by check (the engineer's action, in Chinese).
ADVICE = {
    "disk_usage": "磁盘空间反复告警：建议清理过期日志与临时文件，评估扩容，并设置日志轮转",
    "backup_space": "备份空间反复告警：建议按保留策略清理过期备份或扩容备份存储",
    "tablespace_usage": "表空间使用率反复告警：建议提前扩展表空间或增加数据文件，结合技术年结做历史数据压缩",
    "last_backup": "备份反复失败或过期：建议检查备份作业调度与备份脚本日志，确保每日备份成功",
    "log_errors": "日志中反复出现错误：建议分析错误根因并与应用厂商共同修复，避免同类故障重复发生",
    "ebill_function": "电子票据功能反复不可用：建议排查对应服务的稳定性，必要时增加监控频率和冗余",
    "interface_calls": "接口调用成功率或耗时反复超标：建议联系签名服务器/业务系统厂商排查网络与服务性能",
    "finance_backlog": "财政平台在途票据反复积压：建议检查前置机与财政网络，及时补传未监制/未归档票据",
    "bill_stock": "票据库存反复低于预警：建议与财务部门确认领用计划，提前申领并下发至开票点",
    "certificate_expiry": "证书临近到期：建议立即申请续期并安排更换窗口",
    "calendar_coverage": "节假日日历未覆盖未来12个月：建议在国务院通知发布后及时录入 config/holidays",
    "invoice_quality": "数据质量规则反复不符合：建议与业务系统厂商排查数据来源，修正历史数据并在源头增加校验",
    "evidence_chain": "证据链出现问题：建议立即核查证据库访问权限与签名密钥的保管",
}
DEFAULT_ADVICE = "同类问题反复出现：建议分析根因并制定预防措施"


@dataclass
class Sighting:
    at: datetime
    status: str
    reason: str
    code: str
    prefix: str
    duty: str


@dataclass
class Finding:
    check: str
    title: str
    host: str
    target: str
    opened: Sighting
    seen: list[Sighting] = field(default_factory=list)   # every non-OK run while open
    closed: Sighting | None = None                       # the first OK run after
    last_checked: datetime | None = None                 # the item's last run in the period, any status

    @property
    def worst(self) -> str:
        return max((s.status for s in self.seen), key=RANK.__getitem__)

    @property
    def item(self) -> str:
        return " ".join(x for x in (self.host, self.target) if x)

    def open_hours(self, as_of: datetime) -> float:
        end = self.closed.at if self.closed else as_of
        return round((end - self.opened.at).total_seconds() / 3600, 1)


def _sightings(bundles: list[Bundle]) -> dict[tuple[str, str, str], list[tuple[Sighting, str]]]:
    """Per item, every record of it in run order (a run with several records of one item, e.g. the
    inspection and its pre-holiday twin, counts as its worst)."""
    items: dict[tuple[str, str, str], list[tuple[Sighting, str]]] = {}
    for b in bundles:
        worst: dict[tuple[str, str, str], dict] = {}
        for r in b.results:
            key = (r.get("check", ""), r.get("host") or "", r.get("target") or "")
            if key not in worst or RANK.get(r["status"], 0) > RANK.get(worst[key]["status"], 0):
                worst[key] = r
        for key, r in worst.items():
            items.setdefault(key, []).append(
                (Sighting(b.started_at, r["status"], r.get("reason", ""), r.get("code", ""), b.prefix, b.duty),
                 r.get("title", key[0])))
    return items


def findings(bundles: list[Bundle]) -> list[Finding]:
    """Every finding of the period, oldest first."""
    out: list[Finding] = []
    for (check, host, target), seen in _sightings(bundles).items():
        current: Finding | None = None
        last = seen[-1][0].at
        for s, title in seen:
            if s.status in FINDING:
                if current is None:
                    current = Finding(check, title, host, target, opened=s, last_checked=last)
                    out.append(current)
                current.seen.append(s)
            elif s.status == "OK" and current is not None:
                current.closed = s
                current = None
    return sorted(out, key=lambda f: (f.opened.at, f.check, f.item))


@dataclass
class Proposal:
    check: str
    title: str
    item: str
    findings: int
    runs: int
    advice: str
    prefixes: list[str]


def proposals(found: list[Finding]) -> list[Proposal]:
    """改进建议: one per recurring item, most frequent first."""
    by_item: dict[tuple[str, str], list[Finding]] = {}
    for f in found:
        by_item.setdefault((f.check, f.item), []).append(f)
    out = []
    for (check, item), fs in by_item.items():
        runs = sum(len(f.seen) for f in fs)
        if len(fs) >= RECUR_FINDINGS or max(len(f.seen) for f in fs) >= RECUR_RUNS:
            out.append(Proposal(check, fs[0].title, item, len(fs), runs, ADVICE.get(check, DEFAULT_ADVICE),
                                [f.opened.prefix for f in fs]))
    return sorted(out, key=lambda p: (-p.runs, p.check, p.item))


def per_month(found: list[Finding], tz, months: list[str] = ()) -> dict[str, dict[str, int]]:
    """Findings opened per month (local), by worst status: the chart's data (every month of
    `months` present, a month without findings as zero)."""
    out: dict[str, dict[str, int]] = {m: {} for m in months}
    for f in found:
        m = f.opened.at.astimezone(tz).strftime("%Y-%m")
        out.setdefault(m, {}).setdefault(f.worst, 0)
        out[m][f.worst] += 1
    return dict(sorted(out.items()))
