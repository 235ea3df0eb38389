"""The Prefect task of the daily quality check: validate one period, collect records and files."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from config.settings import DatabaseConfig
from tasks.database import connect
from tasks.quality.gx_run import run_suites
from tasks.quality.results import keys_csv, report_rules, summarise, to_results
from tasks.results import CheckResult, error_result, utcnow

DEFAULT_CANON = "ebill_canon"


@dataclass
class QualityFindings:
    results: list[CheckResult]
    files: dict[str, bytes | str] = field(default_factory=dict)  # evidence name -> content
    context: dict = field(default_factory=dict)  # what the report shows besides the records


def period_text(start: date, end: date) -> str:
    last = end - timedelta(days=1)
    return start.isoformat() if last == start else f"{start.isoformat()} 至 {last.isoformat()}"


@task(name="validate_invoices", cache_policy=NONE, retries=0)
def validate_invoices(site_id: str, db_cfg: DatabaseConfig, start: date, end: date, now: datetime,
                      workdir: Path, rules: list[str] | None = None) -> QualityFindings:
    """Every rule over [start, end) (end excluded) as of `now` (local, naive); Data Docs into workdir."""
    started = utcnow()
    base = {"period_zh": period_text(start, end), "as_of": now.isoformat(sep=" ", timespec="seconds"),
            "rules": [], "checked": {}, "data_docs": ""}
    canon = db_cfg.schema_name or DEFAULT_CANON
    docs = Path(workdir) / "data_docs"
    try:
        db = connect(db_cfg)
        try:
            run = run_suites(db, canon, start, end, now, docs_dir=docs, rules=rules)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - no database, no suites: one ERROR record says why
        return QualityFindings([error_result(exc, started_at=started, check="invoice_quality",
                                             title="票据数据质量检查", site=site_id, target="DQ01-DQ22")],
                               context=base)
    summaries = summarise(run)
    results = to_results(site_id, summaries, started, utcnow(), period_text(start, end))
    files: dict[str, bytes | str] = {s.csv_name(): keys_csv(s) for s in summaries if s.failing}
    for path in sorted(docs.rglob("*")) if docs.exists() else []:
        if path.is_file():
            files[f"data_docs/{path.relative_to(docs).as_posix()}"] = path.read_bytes()
    context = {**base, "rules": report_rules(summaries), "checked": run.checked, "gx_seconds": run.seconds,
               "data_docs": "data_docs/index.html" if "data_docs/index.html" in files else ""}
    return QualityFindings(results, files, context)
