"""技术年结 (QH row 14), every December, behind an approval.

"1）年底增加次年度表空间，对数据库进行分表分库。同时，对超过2年的静态数据进行压缩，提升Oracle数据库整体性能
 2）文件服务器碎片整理，并对超过2年的电子票据板式文件进行压缩".

- plan (scheduled on the first workday of December, 09:00 Asia/Shanghai, and by hand): read the
  catalogue, list every statement (next year's tablespace and partitions, the year after next's when
  missing, the compaction of the years that ended more than two years ago), measure what the
  compaction must not change, store the plan (plan.json, plan.md) with its SHA-256 in the evidence
  bundle and tell the site's group that an approval waits. Nothing is changed: the DBA session is
  opened read-only.
- execute (by hand only, after a second person approved that SHA-256): the gate (a PASSED backup
  verification within year_end.max_backup_verification_age_days whose chain verifies, and a fresh
  backup now), then each step unless already done; the 技术年结记录 goes into the evidence bundle and
  the run fails after that when a step failed.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from config.settings import Site, load_site
from flows.common import BadInput, RunOutcome, current_run_id, finish, state_dir, store_evidence
from flows.duty_slot import duty_slot
from tasks.approvals.gate import ApprovalRefused, require_approval
from tasks.approvals.ui import approve_in_ui
from tasks.approvals.plan import Plan, canonical_json, render_markdown
from tasks.approvals.records import ApprovalRecord
from tasks.approvals.runbook import run_steps
from tasks.backup.fresh import fresh_backup, standing_plan
from tasks.connect.ssh import HostPool
from tasks.core.alerts import send_alerts
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow
from tasks.evidence.store import open_store
from tasks.evidence.verify import list_bundles, verify
from tasks.yearend import record
from tasks.yearend.backup_gate import verification_gate
from tasks.yearend.compose import NothingToPlan, YearEndExecutor, closing_part, plan_parts
from tasks.yearend.files import member_lists
from tasks.yearend.runner import journal_path, note, read_journal

DUTY = "year_end"


class YearEndParams(BaseModel):
    """The form the Prefect UI shows for the year-end (技术年结)."""
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml）")
    year: int | None = Field(default=None, ge=2000, le=2100, description="要准备的年度；留空为明年")
    mode: Literal["plan", "execute"] = Field(default="plan", description="plan 只生成方案并等待审批；execute 执行已审批的方案")
    engineer: str = Field(default="", description="维护工程师（方案申请人 / 执行人）")
    plan_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                    description="execute：要执行的方案 SHA-256；留空取该年度最新的方案")
    wait_for_approval: bool = Field(default=False, description=(
        "execute：尚无审批时暂停本次运行，由第二人在 Prefect 界面中填写审批表单（超时即视为拒绝）；"
        "否则立即结束并给出 ebops approve 命令"))



class NotConfigured(BadInput):
    pass


class NotApproved(BadInput):
    pass


def make_plan(site: Site, year: int, today, engineer: str) -> Plan:
    try:
        steps, facts = plan_parts(site, year, today)
    except NothingToPlan as exc:
        raise NotConfigured(str(exc)) from None
    facts.update(year=year, planned_on=today.isoformat())
    return Plan(site=site.site, duty=DUTY, title=f"{year}年技术年结方案", requested_by=engineer or "未署名",
                steps=steps, facts=facts)


def load_plan(site: Site, year: int, sha: str | None) -> tuple[Plan, str]:
    """The stored plan to execute (the newest of that year, or the one with that SHA-256), after the
    year-end chain verifies: a plan is executed as approved, never re-rendered."""
    report = verify(site.evidence, site.site, DUTY)
    bad = [p for p in report.problems if p.severity == "error"]
    if bad:
        raise NotApproved(f"the year-end evidence of {site.site} does not verify ({bad[0].code} {bad[0].prefix}) "
                          f"(hint: `ebops evidence verify -s {site.site} --duty {DUTY}`)")
    store = open_store(site.evidence)
    for b in sorted(list_bundles(site.evidence, site.site, DUTY, period=str(year)), key=lambda b: b.started_at, reverse=True):
        try:
            plan = Plan.model_validate_json(store.get(b.prefix + "plan.json"))
        except Exception:  # noqa: BLE001 - an execute bundle holds no plan.json
            continue
        if sha is None or plan.sha256() == sha:
            return plan, b.prefix
    raise NotApproved(f"no stored year-end plan for {year}" + (f" with SHA-256 {sha}" if sha else "")
                      + f" (hint: `ebops yearend {site.site} --mode plan` first)")


def approve(site: Site, plan: Plan, plan_key: str, engineer: str, in_ui: bool = False) -> ApprovalRecord:
    """The recorded approval of exactly this stored plan by a second person (tasks/approvals/gate.py:
    listed approver, not the requester nor this run's engineer, not expired), or NotApproved.
    `in_ui`: without one, pause the run for the approval form in the Prefect UI (tasks/approvals/ui.py)."""
    try:
        if in_ui:
            return approve_in_ui(site, plan, engineer or plan.requested_by, plan_key=plan_key)
        return require_approval(site, plan, engineer or plan.requested_by, plan_key=plan_key)
    except ApprovalRefused as exc:
        raise NotApproved(f"{exc} [{exc.code.value if hasattr(exc.code, 'value') else exc.code}] "
                          f"(plan {plan_key}: `ebops approve {site.site} {plan_key} --as NAME`)") from None


def _gate(site: Site, pool: HostPool, engineer: str) -> tuple[list[CheckResult], list[dict]]:
    results = [verification_gate(site)]
    if results[0].status is not Status.OK:
        return results, []
    name = site.year_end.backup_host
    host = next((h for h in site.hosts if (h.name == name if name else h.role == "database") and h.backup), None)
    if host is None:
        return results + [CheckResult(check="fresh_backup", title="执行前全量备份", site=site.site, status=Status.FAIL,
                                      code=Code.NOT_CONFIGURED, reason="站点配置没有带备份命令的数据库主机")], []
    approval, refusal, approvals = None, None, []
    plan = standing_plan(site)
    try:  # the fresh backup runs under its own standing approval, as the pre-holiday check's
        approval = require_approval(site, plan, engineer) if plan else None
        approvals = [approval.summary()] if approval else []
    except ApprovalRefused as exc:
        refusal = (exc.code, f"{exc}（执行前备份的常设方案未获审批：ebops standing-plans {site.site}）")
    taken = fresh_backup(site.site, host, pool, "run", approval=approval, refusal=refusal)
    return results + [r.model_copy(update={"title": "执行前全量备份"}) for r in taken], approvals


def _plan_run(site: Site, params: YearEndParams, year: int, today) -> tuple[Plan, list[CheckResult], dict, dict]:
    plan = make_plan(site, year, today, params.engineer)
    md = render_markdown(plan)
    rec = CheckResult(check="year_end_plan", title="技术年结方案", site=site.site, target=f"{year} 年", value=plan.sha256(),
                      status=Status.OK, threshold="方案生成并存证，等待第二人审批",
                      reason=f"{len(plan.steps)} 个步骤，方案 SHA-256 {plan.sha256()}，等待审批", raw=md)
    files = {"plan.json": canonical_json(plan), "plan.md": md}
    return plan, [rec], files, record.plan_context(plan, "plan", site.timezone)


def deadline_result(site: Site, year: int, today: date) -> CheckResult:
    """The year-end for `year` is owed by 31 December of the year before; later it still runs (next
    year's partitions are then urgent), with a WARN the record keeps."""
    due = date(year - 1, 12, 31)
    late = today > due
    return CheckResult(check="year_end_deadline", title="年结期限", site=site.site, target=f"{year} 年", value=str(today),
                       threshold=f"{due} 前完成", status=Status.WARN if late else Status.OK,
                       code=Code.YEAR_END_LATE if late else Code.OK,
                       reason=f"执行日 {today}，{'已超过' if late else '在'}期限 {due}{'' if late else ' 之内'}")


def _execute_run(site: Site, params: YearEndParams, year: int, today: date,
                 pool: HostPool) -> tuple[list[CheckResult], dict, list[dict], dict]:
    plan, prefix = load_plan(site, year, params.plan_sha256)
    approval = approve(site, plan, prefix, params.engineer, in_ui=params.wait_for_approval)
    approvals = [approval.summary()]
    journal = journal_path(state_dir(site), plan)
    gate, backup_approvals = _gate(site, pool, params.engineer)
    outcomes = []
    if all(r.status is Status.OK for r in gate):
        outcomes = execute_plan(site, plan, approval, pool, journal)
        steps = record.step_results(site.site, plan, outcomes)
    else:
        steps = record.step_results(site.site, plan, [], "执行前提未满足（备份恢复验证或执行前备份），未执行任何变更")
    ctx = record.plan_context(plan, "execute", site.timezone, outcomes=outcomes, journal=read_journal(journal),
                              run_id=current_run_id(), approvals=approvals, plan_prefix=prefix)
    files = member_lists(outcomes)
    ctx["archives"] = sorted(files)
    closing_records: list[CheckResult] = []
    if site.year_end.files is not None or site.year_end.database is not None:
        # 年度票据归档清单 of the year being closed: read-only, in every execute's record
        closing_records, closing_ctx, closing_files = closing_part(site, year - 1)
        ctx.update(closing_ctx)
        files.update(closing_files)
    return [deadline_result(site, year, today)] + gate + steps + closing_records, ctx, approvals + backup_approvals, files


def execute_plan(site: Site, plan: Plan, approval: ApprovalRecord, pool: HostPool, journal) -> list:
    """The approved plan's steps (database, then the file server's) through the approvals' runbook
    (tasks/approvals/runbook.run_steps: every outcome recorded in the store as it ends, a later run
    resumes after the last completed step). The journal beside it notes when a step starts, so the
    record of the run that finishes can name the step a killed run was in."""
    ex = YearEndExecutor(site, plan, pool)
    run_id = current_run_id()
    why: dict[str, str] = {}

    def already_done(step) -> bool:
        why[step.id] = ex.already_done(step) or ""
        return bool(why[step.id])

    def execute(step):
        note(journal, run_id, "step_started", step.id)
        out = ex.execute(step)
        note(journal, run_id, "step_" + out.status, step.id, out)
        return out

    note(journal, run_id, "run_started")
    try:
        outcomes = run_steps(site, plan, approval, execute, already_done)
    finally:
        ex.close()
    note(journal, run_id, "run_finished")
    # the runbook says "already done" in English; the record says it in the hospital's words
    return [o.model_copy(update={"output": _done_zh(o, why.get(o.step_id))}) if o.status == "already_done" else o
            for o in outcomes]


def _done_zh(o, why: str | None) -> str:
    if why:
        return why  # what the catalogue shows in place
    when = o.output.rsplit("recorded ", 1)[-1] if "recorded " in o.output else ""
    return f"此前运行已完成，执行结果已存证（{when}），本次未重复执行" if when else o.output


@flow(name="year-end", log_prints=True)
def year_end(params: YearEndParams = YearEndParams()) -> RunOutcome:
    """技术年结: plan (stored, awaiting approval) or execute an approved plan; the record as evidence."""
    site = load_site(params.site)
    if site.year_end is None:
        raise NotConfigured(f"site {site.site} has no year_end section (hint: see config/sites/demo.yaml)")
    started = utcnow()
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(site.timezone)).date()
    year = params.year or today.year + 1
    files: dict = {}
    approvals: list[dict] = []
    with duty_slot(site.site, DUTY):
        if params.mode == "plan":
            plan, results, files, ctx = _plan_run(site, params, year, today)
        else:
            with HostPool() as pool:
                results, ctx, approvals, files = _execute_run(site, params, year, today, pool)
        bundle = store_evidence(site, DUTY, period=str(year), form=DUTY, title="技术年结记录",
                                kind_zh=f"{year} 年度技术年结（{ctx['mode_zh']}）", results=results, started_at=started,
                                engineer=params.engineer, extra_files=files, approvals=approvals, context=ctx)
    if params.mode == "plan":
        get_run_logger().info("plan %s stored in %s: waiting for approval", plan.sha256(), bundle.prefix)
        waiting = CheckResult(check="year_end_plan", title=f"{year}年技术年结方案待审批", site=site.site,
                              target=plan.sha256(), status=Status.WARN, code=Code.APPROVAL_PENDING,
                              reason=f"方案 SHA-256 {plan.sha256()[:16]}… 已存证（{bundle.prefix}），请信息科第二人审批后执行")
        send_alerts(site, [waiting], title=f"{year}年技术年结方案待审批", report_url=bundle.report_url,
                    evidence_prefix=bundle.prefix)
    return finish(site, DUTY, results, bundle)
