"""One set of verification steps per database family, chosen by the site's `dialect`: the flow
reads the same checklist whatever the backend, and a backend lacking a step cannot be chosen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from config.hosts import BackupConfig
from tasks.backup.verify import oracle_tasks, pg_flow_steps as steps, pg_restore_steps as steps_restore
from tasks.backup.verify.outputs import VerifyContext


@dataclass(frozen=True)
class Backend:
    name_zh: str
    take_backup: Callable      # (ctx, session, backup location, run stamp) -> Located
    validate: Callable         # (ctx, session, Located) -> Validated
    restore: Callable          # (ctx, session, Located, scratch name, Prefect run id) -> Restored
    verify: Callable           # (ctx, Located, Restored) -> Verified
    cleanup: Callable          # (ctx, Restored, keep) -> records
    location: Callable[[VerifyContext, BackupConfig | None], BackupConfig]
    plan: Callable[[VerifyContext, bool, str], dict[str, tuple[str, str]]]   # step -> (title, what would be done)
    scope_ours_zh: str         # what "our own backup" compares


def _pg_location(ctx: VerifyContext, host_backup: BackupConfig | None) -> BackupConfig:
    if host_backup is None:
        raise ValueError(f"host {ctx.cfg.host} has no backup section (hint: directory and pattern of the dumps)")
    return host_backup


def _pg_plan(ctx: VerifyContext, take: bool, scratch: str) -> dict[str, tuple[str, str]]:
    return {"locate": ("备份文件", "在快照中执行 pg_dump 并计算生产库指纹" if take else
                       f"在 {ctx.cfg.host} 上定位最新备份并计算 SHA-256"),
            "validate": ("备份可读性", "pg_restore --list 与完整读取"),
            "restore": ("恢复", f"在验证服务器创建临时库 {scratch} 并 pg_restore"),
            "verify": ("比对校验", "对象清单、行数、内容指纹、票据抽样、RPO、RTO"),
            "cleanup": ("临时库", f"删除临时库 {scratch}")}


def _ora_plan(ctx: VerifyContext, take: bool, scratch: str) -> dict[str, tuple[str, str]]:
    return {"locate": ("备份文件", "取当前 SCN，expdp FLASHBACK_SCN 导出并以 AS OF SCN 计算生产库指纹" if take else
                       f"在 {ctx.cfg.host} 上定位最新 Data Pump 导出文件并计算 SHA-256"),
            "validate": ("备份可读性", "RMAN RESTORE DATABASE VALIDATE CHECK LOGICAL、RESTORE DATABASE PREVIEW，"
                                     "V$RMAN_BACKUP_JOB_DETAILS 最新整库备份状态"),
            "restore": ("恢复", f"创建无登录权限的临时 schema {scratch.upper()}，impdp REMAP_SCHEMA 导入"),
            "verify": ("比对校验", "对象清单、行数、内容指纹、票据抽样、RPO、RTO"),
            "cleanup": ("临时 schema", f"DROP USER {scratch.upper()} CASCADE")}


BACKENDS: dict[str, Backend] = {
    "postgresql": Backend(
        "PostgreSQL", steps.take_backup, steps.validate_backup, steps_restore.restore_to_scratch,
        steps_restore.verify_restored, steps_restore.cleanup, _pg_location, _pg_plan,
        "ebill-ops 在导出的快照中备份并在同一快照内计算生产库行数与指纹：全表、全部列比较"),
    "oracle": Backend(
        "Oracle", oracle_tasks.take_backup, oracle_tasks.validate_backup,
        lambda ctx, session, located, scratch, _run_id: oracle_tasks.restore_to_scratch(ctx, session, located, scratch),
        oracle_tasks.verify_restored, oracle_tasks.cleanup, oracle_tasks.dump_config, _ora_plan,
        "ebill-ops 以 expdp FLASHBACK_SCN 导出，并以同一 SCN（AS OF SCN）计算生产库行数与指纹：全表、全部列比较"),
}


def backend_for(dialect: str) -> Backend:
    if dialect not in BACKENDS:
        raise ValueError(f"backup verification has no backend for {dialect!r} (hint: {', '.join(BACKENDS)})")
    return BACKENDS[dialect]
