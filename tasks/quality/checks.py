"""The Prefect task of the daily quality check: validate one period, collect records and files."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path


from config.hosts import DatabaseConfig
from tasks.connect.database import connect
from tasks.quality.gx_run import run_suites
from tasks.quality.records import checked_zh, keys_csv, report_rules, standing_csv, summarise, to_results
from tasks.quality.standing import track_standing
from tasks.core.check_task import check_task, retry_pending
from tasks.core.results import CheckResult, error_result, utcnow

DEFAULT_CANON = "ebill_canon"


@dataclass
class QualityFindings:
    results: list[CheckResult]
    files: dict[str, bytes | str] = field(default_factory=dict)  # evidence name -> content
    context: dict = field(default_factory=dict)  # what the report shows besides the records
    standing: dict | None = None  # the standing findings to remember once the evidence is stored


def period_text(start: date, end: date) -> str:
    last = end - timedelta(days=1)
    return start.isoformat() if last == start else f"{start.isoformat()} 至 {last.isoformat()}"


# A connection reset mid-suite is retried once (the whole period again); anything else is one ERROR record.
@check_task("validate_invoices", error_fields=None)
def validate_invoices(site_id: str, db_cfg: DatabaseConfig, start: date, end: date, now: datetime,
                      workdir: Path, rules: list[str] | None = None,
                      standing_known: dict[str, dict[str, str]] | None = None) -> QualityFindings:
    """Every rule over [start, end) (end excluded) as of `now` (local, naive); Data Docs into workdir.
    `standing_known`: the standing findings earlier runs reported (tasks/quality/standing.py)."""
    started = utcnow()
    base = {"period_zh": period_text(start, end), "as_of": now.isoformat(sep=" ", timespec="seconds"),
            "rules": [], "checked": {}, "checked_zh": "—", "data_docs": "", "standing": [], "stock_note": ""}
    canon = db_cfg.schema_name or DEFAULT_CANON
    docs = Path(workdir) / "data_docs"
    try:
        db = connect(db_cfg)
        try:
            run = run_suites(db, canon, start, end, now, docs_dir=docs, rules=rules)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - no database, no suites: one ERROR record says why
        if retry_pending(exc):
            raise
        return QualityFindings([error_result(exc, started_at=started, check="invoice_quality",
                                             title="票据数据质量检查", site=site_id, target="DQ01-DQ22")],
                               context=base)
    summaries = summarise(run)
    today = now.date().isoformat()
    state, standing_rows = track_standing(summaries, standing_known or {}, today)
    results = to_results(site_id, summaries, started, utcnow(), period_text(start, end))
    files: dict[str, bytes | str] = {s.csv_name(): keys_csv(s) for s in summaries if s.failing}
    files.update({s.standing_csv_name(): standing_csv(s, today) for s in summaries if s.standing})
    for path in sorted(docs.rglob("*")) if docs.exists() else []:
        if path.is_file():
            files[f"data_docs/{path.relative_to(docs).as_posix()}"] = path.read_bytes()
    context = {**base, "rules": report_rules(summaries), "checked": run.checked, "checked_zh": checked_zh(run.checked),
               "gx_seconds": run.seconds, "standing": standing_rows,
               "stock_note": stock_note(run.checked) if any(s.standing_scope == "stock" for s in summaries) else "",
               "data_docs": "data_docs/index.html" if "data_docs/index.html" in files else ""}
    return QualityFindings(results, files, context, state)


def stock_note(checked: dict[str, int]) -> str:
    """How DQ21 is judged, said in the report (the canonical ebill_stock carries no change time)."""
    return (f"DQ21（库存号段）只判断本期开具的票据所用的号段（本期 {checked.get('stock_period', 0)} 个），"
            "这些号段的问题计入本期结论。本期未使用的号段（旧的用完、作废号段）的问题列为“长期存在的问题”："
            "首次发现时计入当次结论，此后只列出并注明首次发现日期，不再计入每日结论，直到消除。"
            "库存视图没有号段状态的变更时间，状态变化（用完、作废）无法按日期归入某一期。")
