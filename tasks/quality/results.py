"""From what the suites found to the run's records: one CheckResult per rule DQ01-DQ22, CSVs of
failing business keys, and the rows of the Chinese report.

A rule checked on no rows of an empty period (no bill issued at all) is SKIPPED, not OK: nothing
was looked at, and a day without bills usually means the feed stopped. In a period with bills, a
rule whose own rows are absent (no red bill that day) is OK and says so. A rule
whose query failed is ERROR with the (masked) reason, and the other rules still report.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from tasks.quality.gx_run import CheckOutcome, SuiteRun
from tasks.quality.suites import RULE_IDS
from tasks.reason_codes import Code
from tasks.results import CheckResult, Status

REPORT_KEYS = 20  # failing keys listed per rule in the report; the CSV holds them all
SCOPE_ZH = {"invoice": "张票据", "blue": "张蓝票", "red": "张红票", "item": "条明细", "settlement": "笔结算",
            "stock": "个号段"}


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

    @property
    def status(self) -> Status:
        if self.errors:
            return Status.ERROR
        if self.failing:
            return Status.FAIL if self.severity == "error" else Status.WARN
        return Status.SKIPPED if not self.checked and self.period_empty else Status.OK

    def csv_name(self) -> str:
        return f"failing_keys/{self.rule_id}.csv"


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
        first = outs[0].check
        scopes = sorted({o.check.scope for o in outs})
        checked = sum(run.checked.get(s, 0) for s in scopes)
        text = "、".join(f"{run.checked.get(s, 0)} {SCOPE_ZH.get(s, s)}" for s in scopes)
        failing = sorted({k for o in outs for k in o.failing})
        out.append(RuleSummary(rule, first.title_zh, first.severity, first.key, checked, text, failing,
                               [f"{o.check.check}: {o.error}" for o in outs if o.error],
                               period_empty=first.scope != "stock" and not run.checked.get("invoice")))
    return out


def keys_csv(summary: RuleSummary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(summary.key)
    w.writerows(summary.failing)
    return buf.getvalue()


def key_text(key: tuple) -> str:
    return "/".join(str(k) for k in key)


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
            reason = f"{len(s.failing)} 条不符合（{'+'.join(s.key)}）：{shown}{more}"
        elif status is Status.SKIPPED:
            reason = f"{period_text} 无可检查的数据"
        elif not s.checked:
            reason = f"{period_text} 无此规则适用的数据（{s.checked_text}），无需检查"
        else:
            reason = f"全部符合（检查 {s.checked_text}）"
        results.append(CheckResult(
            check="invoice_quality", title=f"{s.rule_id} {s.title_zh}", site=site, target=s.rule_id,
            value=len(s.failing), unit="条", threshold="0（" + ("错误" if s.severity == "error" else "警告") + "）",
            status=status, reason=reason, started_at=started_at, finished_at=finished_at,
            code=_RULE_CODE.get(status, Code.OK),
            raw=f"checked={s.checked} ({s.checked_text}); failing={len(s.failing)}"))
    return results


def report_rules(summaries: list[RuleSummary]) -> list[dict]:
    """The rows of the report's per-rule table (keys bounded; never any payer data: keys only)."""
    return [{"rule_id": s.rule_id, "title": s.title_zh, "severity_zh": "错误" if s.severity == "error" else "警告",
             "checked": s.checked_text, "failing": len(s.failing), "status": s.status.value,
             "status_zh": s.status.label_zh, "key": "+".join(s.key),
             "sample": [key_text(k) for k in s.failing[:REPORT_KEYS]], "more": max(0, len(s.failing) - REPORT_KEYS),
             "csv": s.csv_name() if s.failing else "", "errors": s.errors} for s in summaries]
