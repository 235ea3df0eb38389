"""Inspection checks that read the hospital's servers over SSH: disk usage, the last backup.

Each check returns CheckResult records: a host that cannot be reached gives an ERROR record naming
the host and the reason (tasks/core/check_task.py), and the other checks of the run go on. Only a
dropped connection is raised, while a Prefect retry remains.
"""
from __future__ import annotations

from datetime import datetime, timezone

from config.hosts import HostConfig
from config.settings import Thresholds
from tasks.backup import folder
from tasks.core.check_task import check_task
from tasks.connect.df import disk_usage as df_paths
from tasks.connect.ssh import HostPool
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, grade, utcnow


def _pct_threshold(warn: float, fail: float) -> str:
    return f"警告 ≥ {warn:g}%，异常 ≥ {fail:g}%"


def _high(pct: float, th: Thresholds, code: Code) -> Code:
    return Code.OK if grade(pct, th.disk_warn_pct, th.disk_fail_pct) is Status.OK else code


def _disk_fields(site_id: str, host: HostConfig, *_: object) -> dict:
    return dict(check="disk_usage", title="服务器磁盘使用率", site=site_id, host=host.name,
                target=", ".join(host.mounts))


@check_task("disk_usage", error_fields=_disk_fields)
def disk_usage(site_id: str, host: HostConfig, pool: HostPool, th: Thresholds) -> list[CheckResult]:
    """Usage of every watched mount of one server (`df -P -k`)."""
    started = utcnow()
    base = dict(check="disk_usage", title="服务器磁盘使用率", site=site_id, host=host.name)
    if not host.mounts:
        return [CheckResult(**base, status=Status.SKIPPED, code=Code.NOT_CONFIGURED,
                            reason="site file lists no mounts for this host")]
    mounts = df_paths(pool.get(host), host.mounts)  # unreachable, refused, timeout: check_task's ERROR
    out = []
    for m in mounts:
        out.append(CheckResult(
            **base, target=m.path, value=m.use_pct, unit="%",
            threshold=_pct_threshold(th.disk_warn_pct, th.disk_fail_pct),
            status=grade(m.use_pct, th.disk_warn_pct, th.disk_fail_pct), code=_high(m.use_pct, th, Code.DISK_USAGE_HIGH),
            reason=f"{m.mounted_on} ({m.filesystem}) 可用 {m.avail_kb / 1048576:.1f} GiB",
            started_at=started, finished_at=utcnow(),
            raw=f"{m.filesystem} {m.size_kb} {m.used_kb} {m.avail_kb} {m.use_pct:g}% {m.mounted_on}",
        ))
    return out


# ---------------------------------------------------------------- backups
# The log and the folder are read by tasks/backup/folder.py, as for the fresh backup and the verification.


def _backup_fields(site_id: str, host: HostConfig, *_: object, **__: object) -> dict:
    return dict(check="last_backup", title="最近一次备份", site=site_id, host=host.name,
                target=host.backup.directory if host.backup else "")


@check_task("last_backup", error_fields=_backup_fields)
def last_backup(site_id: str, host: HostConfig, pool: HostPool, th: Thresholds,
                now: datetime | None = None) -> list[CheckResult]:
    """Status and age of the last backup job, its file on disk, and free space at the destination."""
    started = utcnow()
    now = now or datetime.now(timezone.utc)
    base = dict(check="last_backup", title="最近一次备份", site=site_id, host=host.name)
    cfg = host.backup
    if cfg is None:
        return []
    limit = f"最近成功备份距今 ≤ {th.backup_max_age_hours:g} 小时且最近一次作业成功"
    # Any failure here becomes check_task's ERROR record (target: the backup directory).
    session = pool.get(host)
    log = folder.read_log(session, cfg)
    listing = folder.list_folder(session, cfg)
    space = df_paths(session, [cfg.directory])

    runs = log.runs
    files = folder.sizes_by_name(listing)
    raw = log.last_lines(6) + "\n--- files ---\n" + folder.listing_text(listing)[-2000:]
    out: list[CheckResult] = []
    if not runs:
        out.append(CheckResult(**base, target=cfg.log, status=Status.FAIL, threshold=limit, code=Code.BACKUP_LOG_EMPTY,
                               reason="备份日志中没有已完成的备份记录", raw=raw, started_at=started))
    else:
        last = runs[-1]
        ok_runs = [r for r in runs if r.status == "SUCCESS"]
        last_ok = ok_runs[-1] if ok_runs else None
        age_h = (now - last_ok.finished_at).total_seconds() / 3600 if last_ok else None
        problems, codes = [], []
        if last.status != "SUCCESS":
            problems.append(f"最近一次备份作业状态为 {last.status}")
            codes.append(Code.BACKUP_JOB_FAILED)
        if age_h is None:
            problems.append("日志中没有成功的备份")
            codes.append(Code.BACKUP_NONE_SUCCESSFUL)
        elif age_h > th.backup_max_age_hours:
            problems.append(f"最近成功备份已过去 {age_h:.1f} 小时")
            codes.append(Code.BACKUP_TOO_OLD)
        if last_ok and last_ok.file and last_ok.file not in files:
            problems.append(f"备份文件 {last_ok.file} 不在备份目录中")
            codes.append(Code.BACKUP_FILE_MISSING)
        elif last_ok and last_ok.bytes is not None and files.get(last_ok.file) not in (None, last_ok.bytes):
            problems.append(f"备份文件大小 {files[last_ok.file]} 与日志记录 {last_ok.bytes} 不符")
            codes.append(Code.BACKUP_SIZE_MISMATCH)
        reason = "；".join(problems) if problems else (
            f"{last_ok.file}，{last_ok.finished_at.isoformat()} 完成，{(last_ok.bytes or 0) / 1048576:.1f} MiB")
        out.append(CheckResult(**base, target=last_ok.file if last_ok else cfg.log,
                               value=round(age_h, 1) if age_h is not None else None, unit="小时",
                               threshold=limit, status=Status.FAIL if problems else Status.OK,
                               code=codes[0] if codes else Code.OK, reason=reason, raw=raw, started_at=started, finished_at=utcnow()))
    for m in space:
        out.append(CheckResult(
            check="backup_space", title="备份空间使用率", site=site_id, host=host.name, target=m.path,
            value=m.use_pct, unit="%", threshold=_pct_threshold(th.disk_warn_pct, th.disk_fail_pct),
            status=grade(m.use_pct, th.disk_warn_pct, th.disk_fail_pct), code=_high(m.use_pct, th, Code.BACKUP_SPACE_HIGH),
            reason=f"备份目录所在文件系统可用 {m.avail_kb / 1048576:.1f} GiB", started_at=started,
            raw=f"{m.filesystem} {m.size_kb} {m.used_kb} {m.avail_kb} {m.use_pct:g}% {m.mounted_on}"))
    return out
