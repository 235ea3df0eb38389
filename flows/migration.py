"""服务器迁移: move a hospital's e-bill system onto new servers (QH row 13 系统迁移方案评审; QH 额外
服务标准 1: a free server migration each year), as a runbook of named phases:

  1. preflight (read only)   2. plan (迁移方案, approval #1: plan_review)
  3. freeze (approval #2: downtime; stop the application; no new bills)
  4. backup (final, SHA-256)  5. transfer (copy over SSH, restore, throughput)
  6. verify (every table: inventory, counts, fingerprints; 20 bills; DQ rules on the target)
  7. cutover (approval #3)   8. smoke (health from the target database; a test bill issued and
     red-flushed if the site configures it; the inspection catalogue)
  9. rollback: on any failure after freeze, behind an approval (rollback)

Each phase is journalled in the evidence store as it ends (tasks/migration/journal.py): `resume`
continues a run after its last completed phase, once the plan's SHA-256 and the approvals are
checked again; `pause_after` stops cleanly after a phase; mode `plan` runs preflight and plan only.
A missing approval stops the run cleanly before its point (resume it once given); a refused one
fails it. The downtime (application stopped -> healthy again) is measured against the estimate.
Every run stores a 迁移记录 listing every phase of the run so far.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow
from pydantic import BaseModel, Field

from config.migration import PHASES
from config.settings import Site, load_site
from flows.common import BadInput, RunOutcome, current_run_id, finish, store_evidence
from flows.duty_slot import duty_slot
from tasks.approvals.plan import Plan
from tasks.connect.ssh import HostPool
from tasks.core.error_codes import code_for_exception
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow, verdict
from tasks.migration import cutover, freeze, plan_doc, preflight, smoke_bill, transfer, verify
from tasks.migration.approval import POINT_ZH, ApprovalMissing, ApprovalRefused, approve_point, store_point_plans
from tasks.migration.context import Migration
from tasks.migration.journal import ALL_PHASES, PHASE_ZH, STATUS_ZH, Journal, PhaseRecord, PhaseRefused, PhaseRun

AFTER_FREEZE = ("freeze", "backup", "transfer", "verify", "cutover", "smoke")
NOT_SERVER_ITEMS = ("calendar_coverage",)
# plan_review is asked in the plan phase of an execute run (and again on resume): the gate compares the
# 迁移方案 re-rendered now with the approved one there, before anything changes.
POINT_BEFORE = {"freeze": ("downtime",), "cutover": ("cutover",), "rollback": ("rollback",)}


class MigrateParams(BaseModel):
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml，含 migration: 段）")
    mode: Literal["plan", "execute"] = Field(default="plan", description="plan 只做迁移前检查并生成迁移方案；execute 执行迁移")
    pause_after: str | None = Field(default=None, description=f"在此阶段完成后暂停（{', '.join(PHASES)}）")
    resume: str | None = Field(default=None, description="继续此前的一次运行（运行 ID）")
    engineer: str = Field(default="", description="执行工程师（不能是审批人）")


class Runner:
    def __init__(self, m: Migration, params: MigrateParams, store, mode: str):
        self.m, self.params, self.store, self.mode = m, params, store, mode
        self.plan: Plan | None = None
        self.approvals: list[dict] = []
        self.stopped: list[CheckResult] = []     # why the run stopped where it did (pause, approval)

    # ------------------------------------------------------------ recording
    def _stop(self, phase: str, status: str, st: Status, reason: str, code: str) -> None:
        ph = PhaseRun(phase, self.m.site.site)
        ph.check("运行状态", st, reason, code=code)
        self.m.journal.end(ph.record(0, status))  # type: ignore[arg-type]
        self.stopped += ph.results

    def _approve(self, phase: str, points: tuple[str, ...] | None = None) -> bool:
        for point in POINT_BEFORE.get(phase, ()) if points is None else points:
            try:
                self.approvals.append(approve_point(self.m.site, self.plan, point, self.m.engineer, self.store))
            except ApprovalMissing as exc:
                self._stop(phase, "awaiting_approval", Status.SKIPPED, f"{exc}；审批后以 --resume {self.m.run_id} 继续",
                           Code.APPROVAL_MISSING)
                return False
            except ApprovalRefused as exc:
                self._stop(phase, "refused", Status.FAIL, str(exc), exc.code)
                return False
        return True

    def _phase(self, phase: str, body) -> PhaseRecord | None:
        """Claim, run, journal one phase; None when it may not run (the reason is recorded)."""
        try:
            attempt = self.m.journal.begin(phase)
        except PhaseRefused as exc:
            self._stop(phase, "refused", Status.FAIL, str(exc), Code.PHASE_REFUSED)
            return None
        ph = PhaseRun(phase, self.m.site.site)
        try:
            body(ph, attempt)
        except Exception as exc:  # noqa: BLE001 - the phase's record says what stopped it
            ph.check("执行", Status.ERROR, f"{type(exc).__name__}: {exc}", code=code_for_exception(exc))
        rec = ph.record(attempt)
        self.m.journal.end(rec)
        self.m.facts.update(rec.facts)
        return rec

    # ------------------------------------------------------------ the plan
    def _plan_body(self, ph: PhaseRun, attempt: int) -> None:
        stored = plan_doc.load_plan(self.store, self.m.site, self.m.facts.get("plan_sha256"))
        if stored is not None and (self.mode == "execute" or self.params.resume):
            self.m.facts.update(stored.facts)
            # re-rendered from the stored facts and the site file as it is now: the gate compares it
            # with the plan that was reviewed (any change: plan_changed)
            self.plan = plan_doc.build_plan(self.m, stored.facts, stored.requested_by)
            try:
                self.approvals.append(approve_point(self.m.site, self.plan, "plan_review", self.m.engineer, self.store))
            except ApprovalMissing as exc:
                ph.check("方案评审", Status.SKIPPED, f"{exc}；审批后以 --resume {self.m.run_id} 继续", code=Code.APPROVAL_MISSING)
            except ApprovalRefused as exc:
                ph.check("方案评审", Status.FAIL, str(exc), code=exc.code)
            else:
                ph.check("方案核对", Status.OK, f"当前方案即已评审的方案，SHA-256 {self.plan.sha256()}（方案评审："
                         f"{self.approvals[-1]['approved_by']}）")
        else:
            mib_s = transfer.sample_transfer(self.m, ph)
            quality_s = self._time_quality(ph)
            facts = {"plan_id": datetime.now(ZoneInfo(self.m.site.timezone)).strftime("%Y%m%d_%H%M%S"),
                     "data_bytes": self.m.facts.get("data_bytes"), "dump_bytes_estimate": self._dump_estimate(),
                     "sample_mib": self.m.cfg.sample_transfer_mib, "sample_mib_s": round(mib_s, 2),
                     "quality_s": quality_s,
                     "source_version": self.m.facts.get("source_version"), "target_version": self.m.facts.get("target_version")}
            self.m.facts["plan_id"] = facts["plan_id"]
            self.plan = plan_doc.build_plan(self.m, facts, self.m.engineer)
            key = plan_doc.store_plan(self.store, self.plan)
            keys = store_point_plans(self.m.site, self.plan, self.m.run_id, self.store)
            ph.facts["approval_keys"] = keys
            ph.check("迁移方案", Status.OK, f"已生成并保存（{key}.md），SHA-256 {self.plan.sha256()}；预计停机约 "
                     f"{self.plan.facts['estimate_s']['total']} 秒；待方案评审（第一次审批）：ebops approve "
                     f"{self.m.site.site} {keys['plan_review']} --as 审批人")
        ph.facts.update(plan_sha256=self.plan.sha256(), plan_id=self.plan.facts.get("plan_id"),
                        estimate_s=self.plan.facts.get("estimate_s"))
        self.m.files["migration_plan.md"] = plan_doc.render_plan(self.plan)

    def _time_quality(self, ph: PhaseRun) -> float:
        """The verify phase runs DQ01-DQ22 on the target inside the downtime: timed on the source now."""
        if not self.m.cfg.quality_suites or self.m.cfg.source.engine != "postgresql":
            return 0.0
        summaries, seconds, _ = verify.run_quality(self.m, self.m.cfg.source)
        ph.check("数据质量规则测时", Status.OK, f"{len(summaries)} 条规则在源库上用时 {seconds:.1f} 秒（计入停机时间估算）",
                 value=round(seconds, 1), unit="秒")
        return round(seconds, 1)

    def _dump_estimate(self) -> int:
        """The newest nightly backup's size, if the source's database host has a backup folder."""
        host = self.m.site.any_host(self.m.cfg.source.db_host)
        if host.backup is None:
            return int(self.m.facts.get("data_bytes") or 0)
        from tasks.backup.verify.locate import newest_backup

        return newest_backup(self.m.session(host.name), host.backup)[1]

    def _resume_plan(self) -> bool:
        """On resume: the run's plan, re-rendered now from its facts and the current site file,
        must still be the reviewed one and its review must still hold (the gate says so)."""
        if "plan_sha256" not in self.m.facts:
            return True
        stored = plan_doc.load_plan(self.store, self.m.site, self.m.facts["plan_sha256"])
        if stored is None:
            self._stop("plan", "refused", Status.FAIL, f"运行 {self.m.run_id} 的迁移方案不在证据库中", Code.PLAN_NOT_FOUND)
            return False
        self.plan = plan_doc.build_plan(self.m, stored.facts, stored.requested_by)
        self.m.files["migration_plan.md"] = plan_doc.render_plan(self.plan)
        return self._approve("plan", ("plan_review",))

    # ------------------------------------------------------------ the run
    def go(self) -> None:
        m, done = self.m, {p: r for p, r in self.m.journal.records().items() if r.status == "done"}
        for p in ALL_PHASES:
            if p in done:
                m.facts.update(done[p].facts)
        if not self._resume_plan():
            return
        failed = [p for p, r in m.journal.records().items() if r.status == "failed" and p in AFTER_FREEZE]
        if failed or ("rollback" in m.journal.records() and "rollback" not in done):
            return self._rollback()
        order = PHASES[:2] if self.mode == "plan" else PHASES
        bodies = {"preflight": lambda ph, a: preflight.run(m, ph, self.store), "plan": self._plan_body,
                  "freeze": lambda ph, a: freeze.run(m, ph), "backup": lambda ph, a: transfer.final_backup(m, ph),
                  "transfer": lambda ph, a: transfer.copy_and_restore(m, ph, again=a > 1),
                  "verify": lambda ph, a: verify.run(m, ph), "cutover": lambda ph, a: cutover.cutover(m, ph),
                  "smoke": self._smoke}
        for phase in order:
            if phase in done:
                continue
            if not self._approve(phase):
                return
            rec = self._phase(phase, bodies[phase])
            if rec is None:
                return
            if rec.status != "done":
                if phase in AFTER_FREEZE:
                    self._rollback()
                return
            if self.params.pause_after == phase and phase != order[-1]:
                self._stop(phase, "paused", Status.SKIPPED, f"按要求在“{PHASE_ZH[phase]}”后暂停；以 --resume {m.run_id} 继续",
                           Code.SKIPPED_BY_REQUEST)
                return

    def _smoke(self, ph: PhaseRun, attempt: int) -> None:
        cutover.smoke_health(self.m, ph)
        if not ph.failed():   # the application answers from the target: now its write path, if configured
            smoke_bill.issue_and_flush(self.m, ph)
        from flows.inspection import inspect_site

        after = self.m.after_site()
        outcome = inspect_site(after, "adhoc", self.m.engineer, title="迁移后巡检报告", plain=True)
        # Judged: the items that read the new servers. Listed, not judged: the holiday calendar's
        # coverage reads config/holidays/, which the migration does not touch.
        servers = [r for r in outcome.results if r.check not in NOT_SERVER_ITEMS]
        st = {Status.OK: Status.OK, Status.WARN: Status.WARN}.get(verdict(servers), Status.FAIL)
        bad = [f"{r.title} {r.host or ''} {r.status.value}" for r in servers if r.status is not Status.OK]
        aside = [f"{r.title} {r.status.value}" for r in outcome.results if r.check in NOT_SERVER_ITEMS and r.status is not Status.OK]
        ph.check("新服务器巡检", st, f"巡检目录 {len(outcome.results)} 项（证据包 {outcome.bundle.prefix}），涉及服务器的 "
                 f"{len(servers)} 项结论 {verdict(servers).value}" + (f"：{'；'.join(bad[:8])}" if bad else "")
                 + (f"；与服务器无关、不计入：{'；'.join(aside)}" if aside else ""),
                 value=len(bad), unit="项非正常", code="" if st is Status.OK else Code.MIGRATION_APP_UNHEALTHY)
        ph.facts["inspection_bundle"] = outcome.bundle.prefix

    def _rollback(self) -> None:
        """The way back after a failure past the freeze: behind its approval, recorded the same way."""
        if self.plan is None:
            self._stop("rollback", "refused", Status.FAIL, "没有可核对的迁移方案，无法回退审批", Code.PLAN_CHANGED)
            return
        if self._approve("rollback"):
            self._phase("rollback", lambda ph, a: cutover.rollback(self.m, ph))


def migration_context(run: Runner, records: dict[str, PhaseRecord]) -> dict:
    tz = ZoneInfo(run.m.site.timezone)
    rows = [{"phase": r.title, "status": STATUS_ZH[r.status], "attempt": r.attempt,
             "started": r.started_at.astimezone(tz).strftime("%m-%d %H:%M:%S"),
             "finished": r.finished_at.astimezone(tz).strftime("%m-%d %H:%M:%S"), "seconds": round(r.seconds, 1),
             "commands": [c.model_dump() for c in r.commands], "note": r.note} for r in records]
    f = run.m.facts
    return {"phases": rows, "plan_sha256": run.plan.sha256() if run.plan else None, "run_id": run.m.run_id,
            "mode": run.mode, "downtime_s": f.get("downtime_s"), "estimate_s": (f.get("estimate_s") or {}).get("total"),
            "copy_mib_s": f.get("copy_mib_s"), "sample_mib_s": f.get("sample_mib_s"), "dump_bytes": f.get("dump_bytes"),
            "points_zh": POINT_ZH, "approvals_given": run.approvals, "test_bills": f.get("smoke_test_bill")}


@flow(name="migration", log_prints=True)
def migration(params: MigrateParams = MigrateParams()) -> RunOutcome:
    """服务器迁移: the runbook of named phases; the 迁移方案 and the 迁移记录 as evidence."""
    site: Site = load_site(params.site)
    if site.migration is None:
        raise BadInput(f"site {site.site} has no migration section (hint: see config/sites/demo.yaml)")
    if not params.engineer.strip():
        raise BadInput("engineer is required: the 迁移记录 names who ran it, and an approver may not be that person")
    if params.pause_after is not None and params.pause_after not in PHASES:
        raise BadInput(f"pause_after {params.pause_after!r}: one of {', '.join(PHASES)}")
    from tasks.evidence.store import open_store

    with duty_slot(site.site, "migration"):
        started = utcnow()
        store = open_store(site.evidence)
        run_id = params.resume or current_run_id()
        journal = Journal(store, site.site, run_id)
        info = journal.run_info()
        if params.resume and info is None:
            raise BadInput(f"no migration run {params.resume} of site {site.site} in the evidence store "
                           f"(hint: the run id is printed by the first run and is in its 迁移记录)")
        mode = info["mode"] if info else params.mode
        if info is None:
            journal.write_run({"site": site.site, "mode": mode, "engineer": params.engineer, "started_at": started.isoformat()})
        with HostPool() as pool:
            run = Runner(Migration(site, run_id, params.engineer, pool, journal), params, store, mode)
            run.go()
        records = sorted(journal.records_all(), key=lambda r: (r.started_at, r.finished_at))
        results = [r for rec in records for r in rec.results]
        local = started.astimezone(ZoneInfo(site.timezone))
        run.m.files["migration_journal.json"] = "[" + ",\n".join(r.model_dump_json() for r in records) + "]"
        bundle = store_evidence(site, "migration", period=local.strftime("%Y-%m-%d"), form="migration",
                                title="迁移方案" if mode == "plan" else "迁移记录", kind_zh="服务器迁移",
                                results=results, started_at=started, engineer=params.engineer,
                                extra_files=run.m.files, approvals=run.approvals,
                                context=migration_context(run, records))
    return finish(site, "migration", results, bundle)
