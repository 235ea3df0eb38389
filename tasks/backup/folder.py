"""The one reader of a site's backup folder and backup log (QH 备份检查; MZ 一.7).

The inspection's last-backup check, the pre-holiday fresh backup and the backup verification all
ask the same two questions of the database host: which runs does the backup job's log record, and
which backup files are in the folder. They are answered here only, so a change of the log format
or of the listing is made once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from config.hosts import BackupConfig
from tasks.connect.ssh import HostSession

# One line per event of the nightly backup job, as the hospital's backup script writes it:
# 2026-11-25T02:03:12+08:00 END job=ebill_full status=SUCCESS file=ebill_20261125_0200.dump bytes=123456
_LOG_LINE = re.compile(r"^(?P<ts>\S+)\s+(?P<event>START|END)\s+(?P<rest>.*)$")


class BackupFolderError(RuntimeError):
    """The log or the folder cannot be read (the message names the host and the path)."""


@dataclass(frozen=True)
class BackupRun:
    finished_at: datetime
    status: str
    job: str
    file: str
    bytes: int | None
    started_at: datetime | None = None  # the job's START line: the dump's data is at least this old


@dataclass(frozen=True)
class BackupLog:
    runs: list[BackupRun]   # finished runs, oldest first
    text: str               # the tail that was read (for the record's raw output)

    @property
    def newest(self) -> BackupRun | None:
        return self.runs[-1] if self.runs else None

    def last_lines(self, n: int) -> str:
        return "\n".join(self.text.splitlines()[-n:])


@dataclass(frozen=True)
class FolderFile:
    path: str
    size: int
    mtime: datetime

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def parse_backup_log(text: str) -> list[BackupRun]:
    """Finished runs in the order they appear; unparsable lines are ignored (logs get hand edits)."""
    runs, started = [], {}
    for line in text.splitlines():
        m = _LOG_LINE.match(line.strip())
        if not m:
            continue
        fields = dict(kv.split("=", 1) for kv in m.group("rest").split() if "=" in kv)
        try:
            ts = datetime.fromisoformat(m.group("ts"))
        except ValueError:
            continue
        if ts.tzinfo is None:
            continue  # without an offset the age could be off by eight hours: not trusted
        job = fields.get("job", "")
        if m.group("event") == "START":
            started[job] = ts
            continue
        size = fields.get("bytes")
        runs.append(BackupRun(ts, fields.get("status", "UNKNOWN").upper(), job, fields.get("file", ""),
                              int(size) if size and size.isdigit() else None, started.pop(job, None)))
    return runs


def read_log(session: HostSession, cfg: BackupConfig, lines: int = 400) -> BackupLog:
    """The last `lines` lines of the backup job's log, parsed."""
    if not cfg.log:
        raise ValueError("site file gives no backup log for this host (backup.log)")
    tail = session.run(["tail", "-n", str(lines), cfg.log])
    if tail.exit_code != 0:
        raise BackupFolderError(f"cannot read backup log {cfg.log} on {session.cfg.name}: {tail.stderr.strip()[:300]}")
    return BackupLog(parse_backup_log(tail.stdout), tail.stdout)


def list_folder(session: HostSession, cfg: BackupConfig) -> list[FolderFile]:
    """Every file in the backup folder matching the site's pattern (not recursive)."""
    res = session.run(["find", cfg.directory, "-maxdepth", "1", "-type", "f", "-name", cfg.pattern,
                       "-printf", r"%T@ %s %p\n"])
    if res.exit_code != 0:
        raise BackupFolderError(f"cannot list {cfg.directory} on {session.cfg.name}: {res.stderr.strip()[:300]}")
    files = []
    for line in res.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1].isdigit():
            files.append(FolderFile(parts[2], int(parts[1]), datetime.fromtimestamp(float(parts[0]), timezone.utc)))
    return files


def sizes_by_name(files: list[FolderFile]) -> dict[str, int]:
    return {f.name: f.size for f in files}


def listing_text(files: list[FolderFile]) -> str:
    """The listing as the record's raw output shows it."""
    return "\n".join(f"{f.mtime.isoformat(timespec='seconds')} {f.size} {f.name}" for f in files)
