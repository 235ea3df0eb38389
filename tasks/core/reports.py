"""Reports for the hospital, in Chinese, rendered from Jinja2 templates (tasks/core/templates/).

One template per report form and per format (HTML for reading and printing, Markdown for the
Prefect UI and e-mail). Templates receive plain data, so a report can be re-rendered from a
bundle's result.json years later.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.core.results import CheckResult, Status

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "html.j2"]),  # every HTML report escapes its data
    undefined=StrictUndefined,  # a missing field is a bug in the flow, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


def local_time(value: datetime, tz: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Times in reports are in the site's timezone, whatever the worker machine's timezone is."""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def format_value(r: CheckResult) -> str:
    if r.value is None:
        return "—"
    if isinstance(r.value, float):
        text = f"{r.value:,.1f}"
    else:
        text = str(r.value)
    return f"{text} {r.unit}".strip()


_env.filters["status_zh"] = lambda s: Status(s).label_zh
_env.filters["value"] = format_value


# Each duty's form has its own words for the same header rows (MZ 一.10 巡检报告; the quality
# check and the restore verification are not inspections). A label of None leaves the row out.
FORM_LABELS: dict[str, dict[str, str | None]] = {
    "inspection": {"kind": "巡检类型", "period": "巡检周期", "time": "巡检时间", "method": "巡检方式",
                   "method_text": "远程自动巡检", "verdict": "巡检结论", "summary": "巡检结果汇总",
                   "details": "巡检明细", "item": "巡检项目", "where": "服务器/对象", "none": "本次巡检未发现需要处理的问题。"},
    # the holiday's dates are its own header rows (节假日、放假时间): no separate period row
    "holiday_precheck": {"kind": "巡检类型", "period": None, "time": "巡检时间", "method": "巡检方式",
                         "method_text": "远程自动巡检", "verdict": "巡检结论", "summary": "巡检结果汇总",
                         "details": "巡检明细", "item": "巡检项目", "where": "服务器/对象",
                         "none": "本次节前巡检未发现需要处理的问题。"},
    # the verification's conclusion is its own row (验证结论: PASSED only if every step is OK)
    "backup_verification": {"kind": "验证类型", "period": "所属季度", "time": "验证时间", "method": "验证方式",
                            "method_text": "自动验证", "verdict": None, "summary": "验证结果汇总",
                            "details": "验证明细", "item": "验证项目", "where": "对象",
                            "none": "各步骤均通过，备份可用于恢复且内容与生产库（截至备份时间）一致。"},
    # the migration's own rows (run, plan SHA-256, downtime, throughput) and its phases
    "migration": {"kind": "类型", "period": "日期", "time": "时间", "method": "方式", "method_text": "自动执行（分阶段，审批后）",
                  "verdict": "结论", "summary": "结果汇总", "details": "明细", "item": "项目", "where": "对象",
                  "none": "各阶段均已完成。"},
    # the period row is the form's own (检查期间: issue dates, and how cross-period rules look past them)
    "invoice_quality": {"kind": "检查类型", "period": "检查期间", "time": "检查时间", "method": "检查方式",
                        "method_text": "远程自动检查", "verdict": "检查结论", "summary": "检查结果汇总",
                        "details": "规则检查明细", "item": "检查规则", "where": "规则编号",
                        "none": "本次检查未发现不符合数据质量规则的数据。"},
    # the year-end (技术年结): a plan, its approval and its execution
    "year_end": {"kind": "年结类型", "period": "年度", "time": "年结时间", "method": "执行方式",
                 "method_text": "自动执行", "verdict": "年结结论", "summary": "结果汇总",
                 "details": "执行明细", "item": "项目", "where": "对象",
                 "none": "各步骤均已完成，压缩前后行数与内容指纹一致。"},
    # 日运行表: one day of the interface watch, sealed the next day
    "watch_day": {"kind": "报表类型", "period": "运行日期", "time": "覆盖时段", "method": "监控方式",
                  "method_text": "定时自动探测（接口运维）", "verdict": "当日结论", "summary": "当日结果汇总",
                  "details": "当日监控明细", "item": "监控项目", "where": "对象", "none": "当日各功能可用，接口与库存未见异常。"},
    # the service report's header rows are its own (报告期间、统计截止); its sections are fixed
    "service_report": {"kind": "报告类型", "period": "报告期间", "time": "生成时间", "method": "生成方式",
                       "method_text": "由证据库自动汇总", "verdict": "总体结论", "summary": "结论汇总",
                       "details": "结论明细", "item": "项目", "where": "对象", "none": ""},
}


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def render_both(form: str, **context) -> dict[str, str]:
    """{'report.html': ..., 'report.md': ...} for the form `form` (e.g. 'inspection'), with its labels."""
    context = {"labels": FORM_LABELS[form], **context}
    return {
        "report.html": render(f"{form}.html.j2", **context),
        "report.md": render(f"{form}.md.j2", **context),
    }
