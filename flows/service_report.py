"""服务报告: the half-yearly service report (QH: 每半年出具半年度服务报告及服务汇总), also per quarter or month.

Built only from the evidence store, so anyone can regenerate it later with the same figures:
  1. the period (2026H2, 2026Q4, 2026-11) and its as-of time (the period's end, or now while it runs);
  2. every bundle of the site that started in the period (tasks/report/collect.py);
  3. duties due (the deployments' schedules and the holiday calendar) against the bundles: on time,
     late, missing; verdicts; findings and how long each stayed open; availability from the watch;
     the backup verifications, year-end and migration records; 改进建议 from recurring findings;
  4. the 维护维修台账 (XLSX), the QH 3.4 rows' figures, the charts (PNG);
  5. report.html (charts embedded), report.md, the XLSX, the charts and result.json (its `figures`)
     into an evidence bundle of duty `service_report`.
The report's own verdict is WARN when duties are missing or late, availability is not measured or
a fault is still open; it never fails the run (the report is the product, its findings its content).
"""
from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from prefect import flow
from pydantic import BaseModel, Field, field_validator

from config.settings import load_site
from flows.common import BadInput, RunOutcome, finish, store_evidence
from flows.duty_slot import duty_slot
from tasks.core.results import utcnow
from tasks.evidence.sign import trusted_keys
from tasks.report.build import build
from tasks.report.collect import PREVIOUS, BadPeriod, parse_period, read_period, resolve_period
from tasks.report.due import DUTY_ZH

KIND_ZH = {"half": "半年度服务报告", "quarter": "季度服务报告", "month": "月度服务报告"}


class ReportParams(BaseModel):
    """The form the Prefect UI shows for a service report."""
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml）")
    period: str = Field(default="previous-half", description="报告期间：2026H2（半年）、2026Q4（季度）、2026-11（月）；"
                        "或 previous-half / previous-quarter / previous-month（运行当天之前最近一个完整期间，定时运行用）")
    as_of: datetime | None = Field(default=None, description="统计截止时间；留空为期间结束或现在（取较早者）")
    since: date | None = Field(default=None, description="服务开始日期（合同开始）；此前的工作不计为应做")
    engineer: str = Field(default="", description="维护工程师（写入报告签字栏）")

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        try:
            # a relative period stays as given: the run resolves it on its own day (resolve_period)
            return v.strip().lower() if v.strip().lower() in PREVIOUS else parse_period(v).label
        except BadPeriod as exc:
            raise ValueError(str(exc)) from None


def report_window(params: ReportParams, tz: str, now: datetime) -> tuple[datetime, datetime, datetime]:
    """(period start, due-window start, as-of) in the hospital's time."""
    p = resolve_period(params.period, now.astimezone(ZoneInfo(tz)).date())
    start, end = p.bounds(tz)
    as_of = params.as_of or min(now, end)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=ZoneInfo(tz))
    as_of = min(as_of, end)
    if as_of <= start:
        raise BadInput(f"period {p.label} has not begun at {as_of:%Y-%m-%d %H:%M} (hint: pick a past period or a later --as-of)")
    window = start
    if params.since is not None:
        window = max(start, datetime.combine(params.since, time(0), ZoneInfo(tz)))
    return start, window, as_of


@flow(name="service-report", log_prints=True)
def service_report(params: ReportParams = ReportParams()) -> RunOutcome:
    """服务报告: the period's duties, findings, faults, availability and charts, from the evidence store."""
    cfg = load_site(params.site)
    with duty_slot(cfg.site, "service_report"):
        started = utcnow()  # tasks/core/clock: a backfill's or a test's pinned day resolves previous-* too
        period = resolve_period(params.period, started.astimezone(ZoneInfo(cfg.timezone)).date())
        start, window, as_of = report_window(params, cfg.timezone, started)
        bundles = read_period(cfg.evidence, cfg.site, start, as_of)
        built = build(cfg.site, cfg.name, cfg.timezone, period, bundles, window, as_of, cfg.precheck_workdays_before,
                      alerting=bool(cfg.notify), keys=trusted_keys(cfg.evidence))
        bundle = store_evidence(
            cfg, "service_report", period=period.label, form="service_report",
            title=KIND_ZH[period.kind], kind_zh=KIND_ZH[period.kind], results=built.records, started_at=started,
            engineer=params.engineer, extra_files=built.files,
            context={"figures": built.figures, "bundles_read": [b.as_row() for b in bundles]},
            render_only={**built.context, "duty_zh": DUTY_ZH, "site_id": cfg.site})
    return finish(cfg, "service_report", built.records, bundle, raise_on_failure=False)
