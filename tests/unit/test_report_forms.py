"""Each duty's report form speaks of its own duty: an inspection's labels (巡检类型, 巡检周期, 巡检结论 …)
only in the inspection forms, the quality check's and the restore verification's own labels in
theirs, and the quality report in Chinese throughout (no English scope or column names)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from flows.common import report_rows, suggestions
from tasks.quality.gx_run import CheckOutcome, SuiteRun
from tasks.quality.records import checked_zh, report_rules, summarise, to_results
from tasks.quality.standing import track_standing
from tasks.quality.suites import load_suites, rule_checks
from tasks.core.reports import FORM_LABELS, render_both
from tasks.core.results import CheckResult, Status

NOW = datetime(2026, 11, 27, 6, 0, 5)
INSPECTION_ONLY = ("巡检类型", "巡检周期", "巡检时间", "巡检方式", "巡检结论", "巡检结果汇总", "巡检明细", "巡检项目",
                   "本次巡检")
QUALITY_ONLY = ("检查类型", "检查期间", "检查方式", "检查结论", "检查结果汇总", "规则检查明细", "检查规则",
                "数据截至", "检查范围")
VERIFICATION_ONLY = ("验证类型", "验证时间", "验证方式", "验证结论", "验证明细")
# what each form must not show (the other duties' words)
FOREIGN = {
    "inspection": QUALITY_ONLY + VERIFICATION_ONLY,
    "holiday_precheck": QUALITY_ONLY + VERIFICATION_ONLY + ("巡检周期",),  # its dates are the holiday's rows
    "backup_verification": INSPECTION_ONLY + QUALITY_ONLY,
    "invoice_quality": INSPECTION_ONLY + VERIFICATION_ONLY + ("检查周期",),
    "year_end": INSPECTION_ONLY + QUALITY_ONLY + VERIFICATION_ONLY,
    "migration": INSPECTION_ONLY + QUALITY_ONLY + VERIFICATION_ONLY,
    "watch_day": INSPECTION_ONLY + QUALITY_ONLY + VERIFICATION_ONLY,
    "service_report": INSPECTION_ONLY + QUALITY_ONLY + VERIFICATION_ONLY,
}
OWN = {
    "inspection": ("巡检类型", "巡检周期", "巡检结论", "巡检明细"),
    "holiday_precheck": ("巡检类型", "巡检结论", "节假日", "值班"),
    "backup_verification": ("验证类型", "验证时间", "验证结论", "验证步骤"),
    "invoice_quality": ("检查类型", "检查期间", "检查结论", "检查范围", "规则检查明细", "长期存在的问题"),
    "year_end": ("年结类型", "年结结论", "方案 SHA-256", "压缩前后对照", "同一方案的此前运行", "被中断"),
    "migration": ("迁移阶段", "方案 SHA-256", "停机时间", "审批", "3. 停机冻结", "李主任", "冒烟测试票据", "0000002589"),
    "watch_day": ("报表类型", "运行日期", "当日结论", "电子票据功能可用率", "中断时段", "封存时间"),
    "service_report": ("报告期间", "维护工作完成情况", "维护维修台账", "改进建议", "考核评价"),
}
ENGLISH_SCOPE = re.compile(r"\b(invoices?|blue|red|items?|settlements?|stock|segments?|bill_code|bill_no|bus_no|"
                           r"start_no|scope)\b", re.IGNORECASE)


def _base(form: str, title: str, kind_zh: str, period: str, results: list[CheckResult]) -> dict:
    v = max((r.status for r in results), key=lambda s: s.rank)
    return dict(hospital="测试医院", title=title, kind_zh=kind_zh, period=period, timezone="Asia/Shanghai",
                started_local="2026-11-27 06:00:05", finished_local="2026-11-27 06:01:10", flow_run_id="r1",
                verdict=v.value, verdict_zh=v.label_zh, engineer="张工",
                summary=[{"status": v.value, "label": v.label_zh, "count": len(results)}],
                results=report_rows(results, "Asia/Shanghai"), suggestions=suggestions(results),
                evidence_prefix=f"demo/{form}/2026/20261127T060005Z_r1/")


def _result(check: str, title: str, status: Status = Status.OK, **kw) -> CheckResult:
    return CheckResult(check=check, title=title, site="demo", status=status, started_at=NOW, finished_at=NOW, **kw)


def _quality_context() -> dict:
    checks = rule_checks(load_suites())
    old, today = ("44010126", "0000000001"), ("44010126", "0000004001")
    found = {"DQ06": [("44010126", "0000000042")], "DQ19_settlements": [("MZ1",)], "DQ21": [today],
             "DQ21_standing": [old]}
    run = SuiteRun([CheckOutcome(c, failing=found.get(c.check, [])) for c in checks],
                   {"invoice": 23940, "blue": 23500, "red": 440, "item": 134000, "settlement": 24000,
                    "stock_period": 12, "stock": 310}, 1.0)
    summaries = summarise(run)
    _, standing = track_standing(summaries, {"DQ21": {"44010126/0000000009": "2026-11-01"}}, "2026-11-26")
    results = to_results("demo", summaries, NOW, NOW, "2026-11-26")
    ctx = _base("invoice_quality", "票据数据质量检查报告", "每日数据质量检查", "2026-11-26", results)
    return {**ctx, "period_zh": "2026-11-26", "as_of": "2026-11-27 06:00:05", "checked": run.checked,
            "checked_zh": checked_zh(run.checked), "rules": report_rules(summaries), "standing": standing,
            "stock_note": "DQ21（库存号段）只判断本期开具的票据所用的号段", "data_docs": "data_docs/index.html"}


def _year_end_context() -> dict:
    from tasks.approvals.plan import Plan, PlanStep, StepOutcome
    from tasks.yearend.record import plan_context, step_results

    step = PlanStep(id="compact:ebill.t_ebill_main_2022", kind="sql", target="db", expect="移入归档表空间",
                    text="VACUUM (FULL, ANALYZE) ebill.t_ebill_main_2022")
    m = {"rows": 735, "fingerprint": "ab" * 16, "method": "hash", "key_shift": 13, "bytes": 1 << 20}
    plan = Plan(site="demo", duty="year_end", title="2027年技术年结方案", requested_by="张工", steps=[step],
                facts={"proof_at_plan": {step.id: m}, "compress_years_up_to": 2023})
    done = StepOutcome(step_id=step.id, status="done", started_at=NOW, finished_at=NOW, output="VACUUM",
                       facts={"before": m, "after": {**m, "bytes": 1 << 19}})
    journal = [{"run": "r0", "event": "run_started", "at": "2026-12-02T01:00:00"},
               {"run": "r0", "event": "step_started", "step": step.id, "at": "2026-12-02T01:00:01"}]
    ctx = _base("year_end", "技术年结记录", "2027 年度技术年结（执行）", "2027", step_results("demo", plan, [done]))
    return {**ctx, **plan_context(plan, "execute", "Asia/Shanghai", outcomes=[done], journal=journal, run_id="r1",
                                  approvals=[{"action": "year_end", "approved_by": "王主任", "plan_sha256": plan.sha256()}])}
def _service_context() -> dict:
    from datetime import timezone

    from tasks.report.build import build
    from tasks.report.collect import Bundle, parse_period
    from tasks.report.due import DUTY_ZH

    period = parse_period("2026-11")
    start, end = period.bounds("Asia/Shanghai")
    at = datetime(2026, 11, 1, 1, 0, tzinfo=timezone.utc)
    disk = {"check": "disk_usage", "title": "服务器磁盘使用率", "host": "db1", "target": "/u01", "status": "FAIL",
            "value": 91.0, "threshold": "警告 ≥ 80%，异常 ≥ 90%", "reason": "可用 1 GiB", "code": "disk_usage_high",
            "finished_at": at.isoformat()}
    b = Bundle("demo/inspection/2026/x/", "demo", "inspection", "2026-11", "FAIL", at, at, 1, "ab" * 32, False, [disk])
    built = build("demo", "测试医院", "Asia/Shanghai", period, [b], start, end)
    ctx = _base("service_report", "月度服务报告", "月度服务报告", "2026-11", built.records)
    return {**ctx, **built.context, "duty_zh": DUTY_ZH, "site_id": "demo", "evidence_key": ""}


def _contexts() -> dict[str, dict]:
    disk = _result("disk_usage", "服务器磁盘使用率", Status.WARN, host="db1", target="/u01", value=85.0, unit="%")
    holiday = {"holiday": {"name": "元旦", "first_day": "2027-01-01", "last_day": "2027-01-03", "days_off": 3,
                           "official": False, "source": "模板"},
               "roster": [{"date_from": "2027-01-01", "date_to": "2027-01-03", "engineer": "张工", "role": "维保",
                           "phone": None}], "roster_gaps": []}
    steps = [_result("backup_locate", "定位备份", target="/backups/x.dump"),
             _result("restore_count", "比对校验：行数", Status.FAIL, target="t_ebill_main", reason="少 1 行")]
    verification = {"backup": {"host": "db1", "path": "/backups/x.dump", "size_mib": 12.5, "sha256": "ab" * 32,
                               "taken_local": "2026-11-27 02:00:00", "time_source": "备份日志"},
                    "scratch": "ebops_verify_20261127", "scratch_kind_zh": "临时库", "database_zh": "PostgreSQL",
                    "scope_zh": "全表比较", "passed": False, "conclusion_zh": "不通过（NOT PASSED）",
                    "steps": [{"name": "定位备份", "started": "02:00:00", "finished": "02:00:01", "seconds": 1.0,
                               "items": 1, "status": "OK", "status_zh": "正常"}],
                    "quality_suite_zh": "发票数据质量套件已在恢复库上运行"}
    return {
        "inspection": _base("inspection", "巡检报告", "月度巡检", "2026-11", [disk]),
        "holiday_precheck": {**_base("holiday_precheck", "节前巡检报告", "节前巡检", "2027-01-01~2027-01-03", [disk]),
                             **holiday},
        "backup_verification": {**_base("backup_verification", "备份恢复验证记录", "季度备份恢复验证", "2026-Q4", steps),
                                **verification},
        "invoice_quality": _quality_context(),
        "year_end": _year_end_context(),
        "migration": {**_base("migration", "迁移记录", "服务器迁移", "2026-11-27",
                              [_result("migration_freeze", "3. 停机冻结：停止应用", host="app1")]),
                      "phases": [{"phase": "3. 停机冻结", "status": "done", "attempt": 1, "started": "11-27 06:00:05",
                                  "finished": "11-27 06:00:13", "seconds": 8.2, "note": "",
                                  "commands": [{"host": "app1", "command": "sh opt/ebill/bin/ebill-app.sh stop",
                                                "exit_code": 0, "output": "stopped", "seconds": 0.3}]}],
                      "plan_sha256": "ab" * 32, "run_id": "r1", "mode": "execute", "downtime_s": 52.8, "estimate_s": 68.0,
                      "copy_mib_s": 4.3, "sample_mib_s": 11.4, "dump_bytes": 330000, "points_zh": {},
                      "test_bills": {"blue": {"bill_code": "44010126", "bill_no": "0000002588", "issued": "2026-11-27 06:01:02"},
                                     "red": {"bill_code": "44010126", "bill_no": "0000002589", "issued": "2026-11-27 06:01:03"}},
                      "approvals_given": [{"action": "migration:downtime", "approved_by": "李主任",
                                           "approved_at": "2026-11-27T05:00:00", "expires_at": "2026-11-30T05:00:00"}]},
        "watch_day": _watch_day_context(),
        "service_report": _service_context(),
    }


def _watch_day_context() -> dict:
    from config.settings import WatchConfig
    from tasks.watch.availability import availability, day_results

    items = lambda st: [{"key": "function:archive", "function": "archive", "title": "电子票据功能可用性",  # noqa: E731
                         "target": "归档（archive）", "status": st, "code": "ok", "reason": "HTTP 503"}]
    records = [{"local": f"2026-11-26 10:{m:02d}:00", "items": items("FAIL" if m == 5 else "OK")} for m in (0, 5, 10)]
    av = availability(records, "2026-11-26", "demo", 300)
    ctx = _base("watch_day", "日运行表", "接口运维日运行表", "2026-11-26", day_results(av, WatchConfig()))
    return {**ctx, "av": av, "sealed_local": "2026-11-27 00:05:00"}


def _text(page: str, ctx: dict) -> str:
    """What a reader sees: no markup, no style sheet, no evidence paths (they name the duty in English)."""
    page = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    page = page.replace(ctx["evidence_prefix"], " ")
    return re.sub(r"(failing_keys|data_docs)/[\w./-]+", " ", page)


@pytest.mark.parametrize("form", sorted(FORM_LABELS))
def test_each_form_has_its_own_labels_and_none_of_the_others(form):
    ctx = _contexts()[form]
    for name, page in render_both(form, **ctx).items():
        text = _text(page, ctx)
        assert "built-in method" not in text, (form, name)  # a dict key read as a method ({{ s.items }})
        assert [w for w in OWN[form] if w not in text] == [], (form, name)
        assert [w for w in FOREIGN[form] if w in text] == [], (form, name)


@pytest.mark.parametrize("form", ["invoice_quality", "backup_verification"])
def test_the_conclusion_row_appears_once(form):
    word = {"invoice_quality": "检查结论", "backup_verification": "验证结论"}[form]
    ctx = _contexts()[form]
    for name, page in render_both(form, **ctx).items():
        assert _text(page, ctx).count(word) == 1, (form, name)


def test_the_quality_report_names_scopes_and_keys_in_chinese():
    ctx = _contexts()["invoice_quality"]
    for name, page in render_both("invoice_quality", **ctx).items():
        text = _text(page, ctx)
        # the raw output behind each record stays machine-readable; the report's words do not
        text = re.sub(r"checked=[^<\n|]*", " ", text)
        assert ENGLISH_SCOPE.findall(text) == [], (name, ENGLISH_SCOPE.findall(text)[:5])
        assert "23940 张票据（其中蓝票 23500 张、红票 440 张）" in text, name
        assert "本期开票使用的号段 12 个（库存共 310 个号段）" in text, name
        assert "（票据代码+票据号码）" in text, name
        # the standing stock finding: new once, the earlier one gone, with the day first seen
        assert "44010126/0000000001" in text and "首次发现，计入本次结论" in text, name
        assert "2026-11-01" in text and "已消除" in text, name
