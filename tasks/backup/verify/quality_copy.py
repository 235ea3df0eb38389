"""Part of step 4: the invoice data-quality suites (DQ01-DQ22) run on the restored copy.

The copy must serve the checks a hospital relies on, not only hold the right rows: every rule has
to run on it. What the rules find is recorded but does not fail the verification: a backup that
faithfully holds a defect of production is a good backup (the daily quality check reports the
defect). A rule that cannot run on the copy (a view missing, a type changed) fails it.
The period is the seven days before the backup's day, judged as of the backup time, so no bill
issued after the backup is expected in the copy.
"""
from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

from psycopg.conninfo import make_conninfo

from config.hosts import DatabaseConfig
from tasks.backup.verify.outputs import Located, Restored, VerifyContext
from tasks.connect.database import connect
from tasks.quality.checks import DEFAULT_CANON, period_text
from tasks.quality.gx_run import run_suites
from tasks.quality.records import summarise
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow

TITLE = "比对校验：恢复库上的数据质量规则（DQ01–DQ22）"
DAYS = 7


def quality_on_copy(ctx: VerifyContext, located: Located, restored: Restored,
                    canon: str = DEFAULT_CANON) -> tuple[CheckResult, dict[str, str]]:
    """The record, and restored_quality.json for the bundle."""
    started = utcnow()
    taken = located.backup.taken_at.astimezone(ZoneInfo(ctx.tz)).replace(tzinfo=None)
    end = taken.date()
    start = end - timedelta(days=DAYS)
    scratch = ctx.cfg.scratch
    cfg = DatabaseConfig(dialect="postgresql", dsn=make_conninfo(scratch.dsn, dbname=restored.scratch), user=scratch.user,
                         password=scratch.password, schema=canon, connect_timeout_s=scratch.connect_timeout_s)
    try:
        db = connect(cfg)
        try:
            summaries = summarise(run_suites(db, canon, start, end, taken))
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001
        return error_result(exc, started_at=started, check="backup_verify", title=TITLE, site=ctx.site,
                            host=ctx.cfg.host, target=restored.scratch or ""), {}
    broken = [f"{s.rule_id}（{'；'.join(s.errors)}）" for s in summaries if s.errors]
    found = {s.rule_id: len(s.failing) for s in summaries if s.failing}
    files = {"restored_quality.json": json.dumps(
        {"period": [start.isoformat(), end.isoformat()], "as_of": taken.isoformat(sep=" "),
         "rules": {s.rule_id: {"checked": s.checked, "failing": len(s.failing), "status": s.status.value,
                               "errors": s.errors} for s in summaries}}, ensure_ascii=False, indent=1)}
    period = period_text(start, end)
    if broken:
        return ctx.record("verify", TITLE.split("：", 1)[1], Status.FAIL, f"恢复库上有规则无法执行：{'，'.join(broken)}",
                          started, target=restored.scratch, value=len(broken), unit="条规则无法执行", threshold="0",
                          code=Code.QUALITY_RULES_BROKEN), files
    ran = sum(1 for s in summaries if s.status is not Status.SKIPPED)
    seen = "；".join(f"{r} {n} 条" for r, n in found.items()) or "无"
    return ctx.record("verify", TITLE.split("：", 1)[1], Status.OK,
                      f"{len(summaries)} 条规则均可在恢复库上执行（{period}，截至备份时间 {taken:%Y-%m-%d %H:%M}；"
                      f"{ran} 条有数据可查）。发现的数据问题：{seen}（与备份有效性无关，以每日数据质量检查为准）",
                      started, target=restored.scratch, value=0, unit="条规则无法执行", threshold="0"), files
