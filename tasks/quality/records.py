"""From what the suites found to the run's records: one CheckResult per rule DQ01-DQ22, CSVs of
failing business keys, and the rows of the Chinese report.

A rule checked on no rows of an empty period (no bill issued at all) is SKIPPED, not OK: nothing
was looked at, and a day without bills usually means the feed stopped. In a period with bills, a
rule whose own rows are absent (no red bill that day) is OK and says so. A rule
whose query failed is ERROR with the (masked) reason, and the other rules still report.

DQ21 judges the stock segments the period's bills were issued from; a defect of a segment no bill
of the period used is a standing finding (tasks/quality/standing.py): it counts against the run
that first sees it, and is listed with the date it was first seen afterwards, without failing every
daily report on the same old segment.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime

from tasks.quality.gx_run import CheckOutcome, SuiteRun
from tasks.quality.suites import RULE_IDS
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status

REPORT_KEYS = 20  # failing keys listed per rule in the report; the CSV holds them all
SCOPE_ZH = {"invoice": "张票据", "blue": "张蓝票", "red": "张红票", "item": "条明细", "settlement": "笔结算",
            "stock": "个号段", "stock_period": "个本期使用的号段"}
KEY_ZH = {"bill_code": "票据代码", "bill_no": "票据号码", "bus_no": "业务流水号", "start_no": "起始号码"}
STANDING_ZH = {"stock": "本期未使用的号段"}  # what a standing check's keys are, by its scope


@dataclass
class RuleSummary:
    rule_id: str
    title_zh: str
    severity: str
    key: tuple[str, ...]
    checked: int
    checked_text: str
    failing: list[tuple]
    errors: list[str]
    period_empty: bool = False  # no bill at all in the period
    standing: list[tuple] = field(default_factory=list)  # defects outside the period's rows (see above)
    standing_scope: str = ""  # the standing check's scope ("" when the rule has none)
    seen_before: dict[tuple, str] = field(default_factory=dict)  # key -> first seen, from earlier runs
    timed_out: bool = False  # every error is the session's deadline cutting a query

    @property
    def standing_new(self) -> list[tuple]:
        """Standing findings no earlier run reported: they count against this run, once."""
        return [k for k in self.standing if k not in self.seen_before]

    @property
    def counted(self) -> list[tuple]:
        return self.failing + self.standing_new

    @property
    def status(self) -> Status:
        if self.errors:
            return Status.ERROR
        if self.counted:
            return Status.FAIL if self.severity == "error" else Status.WARN
        return Status.SKIPPED if not self.checked and self.period_empty else Status.OK

    def csv_name(self) -> str:
        return f"failing_keys/{self.rule_id}.csv"

    def standing_csv_name(self) -> str:
        return f"failing_keys/{self.rule_id}_standing.csv"


def summarise(run: SuiteRun) -> list[RuleSummary]:
    """Per rule, in rule order: the union of its checks' failing keys and the rows they judged."""
    by_rule: dict[str, list[CheckOutcome]] = {}
    for o in run.outcomes:
        by_rule.setdefault(o.check.rule_id, []).append(o)
    out = []
    for rule in RULE_IDS:
        outs = by_rule.get(rule)
        if not outs:
            continue
        period = [o for o in outs if not o.check.standing]
        standing = [o for o in outs if o.check.standing]
        first = period[0].check
        scopes = sorted({o.check.scope for o in period})
        checked = sum(run.checked.get(s, 0) for s in scopes)
        text = "、".join(f"{run.checked.get(s, 0)} {SCOPE_ZH.get(s, '行')}" for s in scopes)
        failing = sorted({k for o in period for k in o.failing})
        out.append(RuleSummary(rule, first.title_zh, first.severity, first.key, checked, text, failing,
                               [f"{o.check.check}: {o.error}" for o in outs if o.error],
                               period_empty=first.scope != "stock" and not run.checked.get("invoice"),
                               standing=sorted({k for o in standing for k in o.failing}),
                               standing_scope=standing[0].check.scope if standing else "",
                               timed_out=any(o.error for o in outs) and all(o.timed_out for o in outs if o.error)))
    return out


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")  # a plain decimal number, e.g. -12.50


def csv_cell(value: object) -> str:
    """A cell as text a spreadsheet shows and never runs (OWASP CSV injection): text starting with
    = + - @, a tab or a carriage return gets a leading single quote. A plain number (-12.50) is
    left as it is: Excel reads it as a number, not a formula, and the auditor sees the amount."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text



def _csv(header: list[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    # RFC 4180 line ends: a cell holding a CR or LF is then quoted, never split into two rows
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([csv_cell(h) for h in header])
    w.writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def keys_csv(summary: RuleSummary) -> str:
    return _csv(list(summary.key), summary.failing)


def standing_csv(summary: RuleSummary, today: str) -> str:
    """The standing findings with the day each was first seen (open_since)."""
    return _csv([*summary.key, "open_since"], [(*k, summary.seen_before.get(k, today)) for k in summary.standing])


def key_text(key: tuple) -> str:
    return "/".join(str(k) for k in key)


def key_names_zh(key: tuple[str, ...]) -> str:
    return "+".join(KEY_ZH.get(k, k) for k in key)


def checked_zh(checked: dict[str, int]) -> str:
    """The report's 检查范围: how many rows of each kind the period held, in words."""
    parts = []
    if "invoice" in checked:
        kinds = [f"{name} {checked[s]} 张" for s, name in (("blue", "蓝票"), ("red", "红票")) if s in checked]
        parts.append(f"{checked['invoice']} 张票据" + (f"（其中{'、'.join(kinds)}）" if kinds else ""))
    parts += [f"{checked[s]} {SCOPE_ZH[s]}" for s in ("item", "settlement") if s in checked]
    if "stock_period" in checked:
        total = f"（库存共 {checked['stock']} 个号段）" if "stock" in checked else ""
        parts.append(f"本期开票使用的号段 {checked['stock_period']} 个{total}")
    elif "stock" in checked:
        parts.append(f"{checked['stock']} 个号段")
    return "，".join(parts) or "—"


# WARN and FAIL both mean failing rows: the rule's severity decides which.
_RULE_CODE = {Status.ERROR: Code.RULE_ERROR, Status.FAIL: Code.RULE_VIOLATED, Status.WARN: Code.RULE_VIOLATED,
              Status.SKIPPED: Code.NO_DATA}


def to_results(site: str, summaries: list[RuleSummary], started_at: datetime, finished_at: datetime,
               period_text: str) -> list[CheckResult]:
    results = []
    for s in summaries:
        status = s.status
        if status is Status.ERROR:
            reason = "规则无法执行：" + "；".join(s.errors)
        elif s.failing:
            shown = "，".join(key_text(k) for k in s.failing[:REPORT_KEYS])
            more = f" 等（完整清单见 {s.csv_name()}）" if len(s.failing) > REPORT_KEYS else ""
            reason = f"{len(s.failing)} 条不符合（{key_names_zh(s.key)}）：{shown}{more}"
        elif status is Status.SKIPPED:
            reason = f"{period_text} 无可检查的数据"
        elif not s.checked and not s.standing_new:
            reason = f"{period_text} 无此规则适用的数据（{s.checked_text}），无需检查"
        elif not s.standing_new:
            reason = f"全部符合（检查 {s.checked_text}）"
        else:
            reason = f"本期全部符合（检查 {s.checked_text}）"
        reason += standing_text(s)
        results.append(CheckResult(
            check="invoice_quality", title=f"{s.rule_id} {s.title_zh}", site=site, target=s.rule_id,
            value=len(s.counted), unit="条", threshold="0（" + ("错误" if s.severity == "error" else "警告") + "）",
            status=status, reason=reason, started_at=started_at, finished_at=finished_at,
            code=Code.QUERY_TIMEOUT if status is Status.ERROR and s.timed_out else _RULE_CODE.get(status, Code.OK),
            raw=f"checked={s.checked} ({s.checked_text}); failing={len(s.failing)}; "
                f"standing={len(s.standing)} (new {len(s.standing_new)})"))
    return results


def standing_text(s: RuleSummary) -> str:
    """What the record says of the rule's standing findings: new ones count (once), known ones are listed."""
    if s.errors or not s.standing:
        return ""
    what = STANDING_ZH.get(s.standing_scope, "本期之外的数据")
    new, known = s.standing_new, [k for k in s.standing if k in s.seen_before]
    text = ""
    if new:
        shown = "，".join(key_text(k) for k in new[:REPORT_KEYS]) + (" 等" if len(new) > REPORT_KEYS else "")
        text += f"；新发现长期问题 {len(new)} 个（{what}，本次计入结论，此后只列出不再计入）：{shown}"
    if known:
        text += (f"；已知长期问题 {len(known)} 个（{what}，最早自 {min(s.seen_before[k] for k in known)} 起未消除，"
                 f"不计入本期结论）")
    return text + f"，清单见 {s.standing_csv_name()}"


def report_rules(summaries: list[RuleSummary]) -> list[dict]:
    """The rows of the report's per-rule table (keys bounded; never any payer data: keys only)."""
    return [{"rule_id": s.rule_id, "title": s.title_zh, "severity_zh": "错误" if s.severity == "error" else "警告",
             "checked": s.checked_text, "failing": len(s.failing), "status": s.status.value,
             "status_zh": s.status.label_zh, "key": key_names_zh(s.key), "standing": len(s.standing),
             "sample": [key_text(k) for k in s.failing[:REPORT_KEYS]], "more": max(0, len(s.failing) - REPORT_KEYS),
             "csv": s.csv_name() if s.failing else "", "errors": s.errors} for s in summaries]
