"""票据数据质量检查: every day at 06:00, yesterday's bills against rules DQ01-DQ22.

MZ 一.4/一.6 (数据检查、对账); the rules are docs/ebill-reference-schema.md's. The checklist:
  1. the period: yesterday in the hospital's time, or any date range by parameter;
  2. the Great Expectations suites of expectations/ over the canonical views (read-only), each rule
     an SQL query returning only the failing rows' business keys; rules that pair rows across time
     (reconciliation, red/blue bills) look past the period's edges;
  3. per rule: rows checked, rows failing, failing keys (bounded in the report, complete as CSV);
     DQ21 judges the stock segments the period's bills used; other broken segments are standing
     findings, counted by the first run that sees them and listed with that day afterwards;
  4. the Chinese 数据质量检查报告, result.json, the CSVs and GX Data Docs into the evidence bundle,
     then the standing findings remembered (only once they are stored);
  5. alerts; then a failed rule (or one that could not run) fails the Prefect run.
"""
from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow
from pydantic import BaseModel, Field, field_validator, model_validator

from config.settings import load_site
from flows.common import RunOutcome, finish, state_dir, store_evidence
from flows.duty_slot import duty_slot
from tasks.core.alerts import send_alerts
from tasks.quality.checks import validate_invoices
from tasks.quality.standing import STATE_FILE, load_standing, save_standing
from tasks.quality.suites import RULE_IDS
from tasks.core.results import utcnow

MAX_DAYS = 400  # a longer range is a migration job, not a check: ask for it in pieces


class QualityParams(BaseModel):
    """The form the Prefect UI shows for a manual run."""
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml）")
    start: date | None = Field(default=None, description="检查期间第一天（开票日期）；留空为昨天")
    end: date | None = Field(default=None, description="检查期间最后一天（含）；留空同第一天")
    rules: list[str] | None = Field(default=None, description="只检查这些规则（如 DQ06、DQ19）；留空检查全部 DQ01–DQ22")
    engineer: str = Field(default="", description="维护工程师（写入报告签字栏）")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            bad = [r for r in v if r not in RULE_IDS]
            if bad or not v:
                raise ValueError(f"rules: unknown {bad or 'empty list'} (hint: DQ01 ... DQ22, or leave empty for all)")
        return v

    @model_validator(mode="after")
    def _range(self) -> "QualityParams":
        if self.end is not None and self.start is None:
            raise ValueError("end is set but start is not (hint: give start, or neither for yesterday)")
        if self.start and self.end:
            if self.end < self.start:
                raise ValueError(f"end {self.end} is before start {self.start}")
            if (self.end - self.start).days >= MAX_DAYS:
                raise ValueError(f"the period spans more than {MAX_DAYS} days (hint: run it in pieces)")
        return self


def quality_period(params: QualityParams, today: date) -> tuple[date, date]:
    """[start, end) in local dates: yesterday by default; `end` of the form is inclusive."""
    start = params.start or today - timedelta(days=1)
    last = params.end or start
    return start, last + timedelta(days=1)


@flow(name="invoice-quality", log_prints=True)
def invoice_quality(params: QualityParams = QualityParams()) -> RunOutcome:
    """票据数据质量检查: the period's bills against DQ01-DQ22; the report, CSVs and Data Docs as evidence."""
    site = load_site(params.site)
    # One run per site at a time: two would read the same standing findings and race for the chain.
    with duty_slot(site.site, "invoice_quality"):
        started = utcnow()
        now = started.astimezone(ZoneInfo(site.timezone)).replace(tzinfo=None)  # the views hold local time
        start, end = quality_period(params, now.date())
        standing_file = state_dir(site) / STATE_FILE
        with tempfile.TemporaryDirectory(prefix="ebops-quality-") as work:
            found = validate_invoices(site.site, site.database, start, end, now, Path(work), params.rules,
                                      load_standing(standing_file))
        label = start.isoformat() if end - start == timedelta(days=1) else f"{start.isoformat()}_{(end - timedelta(days=1)).isoformat()}"
        bundle = store_evidence(site, "invoice_quality", period=label, form="invoice_quality", title="票据数据质量检查报告",
                                kind_zh="每日数据质量检查" if params.start is None else "指定期间数据质量检查",
                                results=found.results, started_at=started, engineer=params.engineer,
                                extra_files=found.files, context=found.context)
        if found.standing is not None:  # only now that the findings are stored: see tasks/quality/standing.py
            save_standing(standing_file, found.standing)
        send_alerts(site, found.results, title="票据数据质量检查", report_url=bundle.report_url, evidence_prefix=bundle.prefix)
    return finish(site, "invoice_quality", found.results, bundle)

