"""Taking a backup now: the pre-holiday check's fresh backup (QH 节前巡检; MZ 一.19).

Running the hospital's backup job writes to its server, so it follows the safety rule "nothing
changes a server without a plan mode and a recorded approval": the job runs only in `run` mode
and only under a recorded approval of its standing plan (`standing_plan`: the exact command per
database host; tasks/approvals/gate.py), which goes into the evidence manifest. Otherwise the step
records the command it would run (plan) and where the plan waits for its approval.

Whether the job finished is judged from the backup log itself, not from the worker's clock: the
newest finished run after the command must differ from the newest before it, say SUCCESS, and
its file must be in the backup folder with the size the log gives (clocks of hospital servers
are often minutes off).
"""
from __future__ import annotations

import shlex
from typing import Literal

from prefect import task
from prefect.cache_policies import NONE

from config.hosts import HostConfig
from config.settings import Site
from tasks.approvals.plan import Plan, PlanStep
from tasks.approvals.records import ApprovalRecord
from tasks.backup import folder
from tasks.connect.ssh import HostPool
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow

BackupMode = Literal["run", "plan", "skip"]


STANDING_REQUESTER = "ebops（常设方案）"  # a standing plan is the product's, not an engineer's request


def backup_hosts(site: Site) -> list[HostConfig]:
    return [h for h in site.hosts if h.backup is not None and h.role == "database"]


def standing_plan(site: Site) -> Plan | None:
    """The fresh backup's standing plan: the exact command on each database host that has one.
    Its SHA-256 changes when a command, folder or log changes: then it must be approved again."""
    hosts = [h for h in backup_hosts(site) if h.backup.command]
    if not hosts:
        return None
    steps = [PlanStep(id=f"backup:{h.name}", kind="command", target=h.name, text=shlex.join(h.backup.command),
                      expect=f"在 {h.name} 上运行医院自己的备份作业：{h.backup.directory} 新增一个备份文件"
                             f"（{h.backup.pattern}），备份日志新增一条完成记录；不改动数据库内容")
             for h in hosts]
    facts = {h.name: {"directory": h.backup.directory, "log": h.backup.log, "pattern": h.backup.pattern,
                      "command_timeout_s": h.backup.command_timeout_s} for h in hosts}
    return Plan(site=site.site, duty="fresh_backup", title=f"{site.name} 节前全量备份常设方案",
                requested_by=STANDING_REQUESTER, steps=steps, facts={"hosts": facts})


@task(name="fresh_backup", cache_policy=NONE)
def fresh_backup(site_id: str, host: HostConfig, pool: HostPool, mode: BackupMode = "run",
                 approval: ApprovalRecord | None = None, refusal: tuple[Code, str] | None = None) -> list[CheckResult]:
    """Run the site's backup command on the database host and check from its log that it finished.
    `approval`: the recorded approval of the standing plan; without one, `refusal` (code, message)
    says why and the step only plans."""
    cfg = host.backup
    started = utcnow()
    base = dict(check="fresh_backup", title="节前全量备份", site=site_id, host=host.name,
                threshold="备份命令成功退出，日志新增一条 SUCCESS 记录且备份文件大小一致")
    if cfg is None or not cfg.command:
        return [CheckResult(**base, target=cfg.directory if cfg else "", status=Status.SKIPPED, code=Code.NOT_CONFIGURED,
                            reason="站点配置没有给出备份命令（hosts[].backup.command），未执行节前备份")]
    command = shlex.join(cfg.command)
    base["target"] = cfg.directory
    if mode == "skip":
        return [CheckResult(**base, status=Status.SKIPPED, code=Code.SKIPPED_BY_REQUEST, reason="本次运行参数选择不做节前备份（fresh_backup=skip）")]
    if mode == "plan" or approval is None:
        if mode == "plan":
            code, why = Code.PLAN_ONLY, refusal[1] if refusal else "计划模式"
        else:
            code, why = refusal or (Code.APPROVAL_MISSING, "没有记录的审批")
            why = f"未获审批（{why}）"
        return [CheckResult(**base, status=Status.SKIPPED, raw=command, code=code,
                            reason=f"{why}：将在 {host.name} 上执行 {command}，本次未执行")]
    try:
        session = pool.get(host)
        before = folder.read_log(session, cfg, lines=50).newest
        res = session.run(cfg.command, timeout=cfg.command_timeout_s)
        log = folder.read_log(session, cfg, lines=50)
        after = log.newest
        files = folder.sizes_by_name(folder.list_folder(session, cfg))
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, timeout: ERROR with the reason
        return [error_result(exc, started_at=started, raw=command, **base)]
    finished = utcnow()
    problems, codes = [], []
    if res.exit_code != 0:
        problems.append(f"备份命令退出码 {res.exit_code}")
        codes.append(Code.COMMAND_FAILED)
    if after is None or after == before:
        problems.append("备份日志没有新增完成记录")
        codes.append(Code.BACKUP_NOT_LOGGED)
    else:
        if after.status != "SUCCESS":
            problems.append(f"新备份作业状态为 {after.status}")
            codes.append(Code.BACKUP_JOB_FAILED)
        if after.file not in files:
            problems.append(f"备份文件 {after.file} 不在备份目录中")
            codes.append(Code.BACKUP_FILE_MISSING)
        elif after.bytes is not None and files[after.file] != after.bytes:
            problems.append(f"备份文件大小 {files[after.file]} 与日志记录 {after.bytes} 不符")
            codes.append(Code.BACKUP_SIZE_MISMATCH)
    raw = f"$ {command}\n(exit {res.exit_code})\n{res.stdout[-1500:]}{res.stderr[-1500:]}\n--- backup log ---\n" \
          + log.last_lines(4)
    elapsed = (finished - started).total_seconds()
    if problems:
        return [CheckResult(**base, status=Status.FAIL, code=codes[0], reason="；".join(problems), raw=raw,
                            value=round(elapsed, 1), unit="秒", started_at=started, finished_at=finished)]
    return [CheckResult(**base, status=Status.OK, value=round(elapsed, 1), unit="秒", raw=raw,
                        reason=f"{after.file}，{(after.bytes or 0) / 1048576:.1f} MiB，日志记录 {after.finished_at.isoformat()} 完成；"
                               f"审批：{approval.approver}（{approval.approved_at:%Y-%m-%d}，{approval.key}）",
                        started_at=started, finished_at=finished)]
