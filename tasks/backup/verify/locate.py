"""Step 1, locate: the backup to verify on the backup host: its name, size, SHA-256 and when it was
taken. The time comes from the backup job's own log (the START line of the run that wrote the
file): the dump holds at least every row committed before it. Without a log entry the file's
modification time is used, and the record says so.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime, timezone

from config.hosts import BackupConfig
from tasks.backup import folder
from tasks.connect.ssh import HostSession


class BackupNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class BackupFile:
    host: str
    path: str
    size: int
    sha256: str
    taken_at: datetime          # when the data was read (START of the job, or the file's mtime)
    time_source: str            # 备份日志 / 文件修改时间 / ebill-ops 快照
    taken_by_us: bool = False   # taken by this run inside an exported snapshot
    snapshot_id: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def newest_backup(session: HostSession, cfg: BackupConfig) -> tuple[str, int, datetime]:
    """(path, size, mtime) of the newest file matching the pattern in the backup folder."""
    try:
        files = folder.list_folder(session, cfg)
    except folder.BackupFolderError as exc:
        raise BackupNotFound(str(exc)) from exc
    if not files:
        raise BackupNotFound(f"no file matching {cfg.pattern} in {cfg.directory} on {session.cfg.name} "
                             f"(hint: check hosts[].backup.directory and pattern, or run with take_backup=true)")
    newest = max(files, key=lambda f: (f.mtime, f.size, f.path))
    return newest.path, newest.size, newest.mtime


def given_backup(session: HostSession, path: str) -> tuple[str, int, datetime]:
    """(path, size, mtime) of a file the engineer named in the form."""
    res = session.run(["stat", "-c", "%Y %s", "--", path])
    if res.exit_code != 0:
        raise BackupNotFound(f"{path} on {session.cfg.name}: {res.stderr.strip()[:200]} "
                             f"(hint: the full path on the backup host, or leave backup_path empty for the newest)")
    mtime, size = res.stdout.split()
    return path, int(size), datetime.fromtimestamp(int(mtime), timezone.utc)


def sha256_of(session: HostSession, path: str, timeout: float) -> str:
    res = session.run(["sha256sum", "--", path], timeout=timeout)
    digest = res.stdout.split(" ", 1)[0]
    if res.exit_code != 0 or len(digest) != 64:
        raise BackupNotFound(f"sha256sum {path} failed on {session.cfg.name}: {res.stderr.strip()[:300]}")
    return digest


def describe(session: HostSession, cfg: BackupConfig, path: str, size: int, mtime: datetime,
             timeout: float) -> tuple[BackupFile, str]:
    """The BackupFile for `path`, with its time from the backup log when the log names it."""
    digest = sha256_of(session, path, timeout)
    taken_at, source, log_tail = mtime, "文件修改时间（备份日志中无此文件）", ""
    if cfg.log:
        try:
            log = folder.read_log(session, cfg)
        except folder.BackupFolderError as exc:  # the file's own time still dates it: say so, go on
            log = folder.BackupLog([], str(exc))
        log_tail = log.last_lines(6)
        name = path.rsplit("/", 1)[-1]
        runs = [r for r in log.runs if r.file == name]
        if runs and runs[-1].started_at is not None:
            taken_at, source = runs[-1].started_at, f"备份日志 START 行（作业 {runs[-1].job}，状态 {runs[-1].status}）"
    raw = f"$ {shlex.join(['sha256sum', '--', path])}\n{digest}  {path}\n--- {cfg.log or 'no backup log'} ---\n{log_tail}"
    return BackupFile(session.cfg.name, path, size, digest, taken_at, source), raw
