"""New error lines in the servers' application and database logs since the last inspection.

Only the bytes added since the previous run are read over SSH (`tail -c +N`), from a position kept
per log: {"inode", "size", "offset", "head_sha256", "head_len"}, keyed "<host>:<path>". The caller
saves the new positions only after the run's evidence is stored, so a crash in between re-reads the
same lines instead of losing them.

Decisions an engineer should know:
- First run (no stored position): the whole file is read, so errors already in the log show on the
  first inspection instead of being silently taken as "before our time".
- Rotation (another inode), truncation (size < offset, e.g. copytruncate) or a rewritten file (the
  first bytes changed): the file is read from its start. On rotation by rename the old file is
  looked up in the same directory by its inode (confirmed by its first bytes) and its unread tail is
  read too, so lines written just before logrotate ran are not lost.
- At most MAX_READ_BYTES per log per run. When more was added, the newest bytes are read (an
  inspection is about the state now) and the skipped span is reported; on a later run that makes the
  item at least WARN, because "no new errors" cannot be claimed for bytes nobody read.
- Only complete lines are consumed: a line still being written stays for the next run.
- Patterns are Python regular expressions, case-sensitive ("ERROR" must not match "errorCount=0");
  one that does not compile is matched as plain text.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path


from config.hosts import HostConfig, LogFile
from tasks.core.atomic_file import write_atomic
from tasks.core.check_task import check_task, retry_pending
from tasks.connect.ssh import HostError, HostPool, HostSession
from tasks.core.error_codes import code_for_exception
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow
from tasks.inspection.log_findings import (
    HEAD_BYTES,
    MAX_READ_BYTES,
    RESTART_ZH,
    bounded,
    complete_lines,
    decode_log,
    effective_patterns,
    find_errors,
    head_digest,
    judge,
    plan_read,
)

MAX_RAW_LINES = 60
MAX_LINE_CHARS = 400
CHECK, TITLE = "log_errors", "日志错误"
_log = logging.getLogger(__name__)


def position_key(host: str, path: str) -> str:
    return f"{host}:{path}"


# ---------------------------------------------------------------- reading over SSH
class LogMissing(Exception):
    pass


class LogUnreadable(LogMissing):
    pass


def _stat(session: HostSession, path: str) -> tuple[int, int, bytes]:
    """(inode, size, first HEAD_BYTES bytes) in one round trip."""
    # Exit codes rather than stat's message: servers set to zh_CN answer in Chinese.
    res = session.run_script('[ -e "$1" ] || exit 3; [ -r "$1" ] || exit 4; '
                             'stat -c "%i %s" -- "$1" && head -c "$2" -- "$1" | base64 -w0',
                             [path, str(HEAD_BYTES)])
    if res.exit_code == 3:
        raise LogMissing(f"日志文件不存在：{path}")
    if res.exit_code == 4:
        raise LogUnreadable(f"日志文件不可读（权限不足）：{path}")
    if res.exit_code != 0:
        why = (res.stderr or res.stdout).strip()[:300] or f"exit code {res.exit_code}"
        raise HostError(f"cannot stat {path} on {session.cfg.name}: {why}")
    first, _, rest = res.stdout.partition("\n")
    inode, size = (int(v) for v in first.split())
    return inode, size, base64.b64decode(rest.strip())


def _read(session: HostSession, path: str, start: int, length: int) -> bytes:
    """`length` bytes from byte `start`, exactly (base64 keeps any encoding intact)."""
    if length <= 0:
        return b""
    res = session.run_script('tail -c +"$2" -- "$1" | head -c "$3" | base64 -w0',
                             [path, str(start + 1), str(length)])
    # A pipeline's status is its last command's: tail's complaints only show on stderr.
    if res.exit_code != 0 or res.stderr.strip():
        raise HostError(f"cannot read {path} on {session.cfg.name}: {res.stderr.strip()[:300]}")
    try:
        return base64.b64decode(res.stdout.strip())
    except binascii.Error as exc:
        raise HostError(f"unreadable output while reading {path} on {session.cfg.name}: {exc}") from None


def _rotated_tail(session: HostSession, path: str, prev: dict) -> tuple[str, bytes] | None:
    """The unread tail of the previous file when rotation renamed it within the same directory:
    found by its inode and confirmed by its first bytes (inode numbers are reused)."""
    res = session.run(["find", os.path.dirname(path) or ".", "-maxdepth", "1", "-type", "f",
                       "-inum", str(int(prev["inode"])), "-print"])
    for old in res.stdout.splitlines() if res.ok else []:
        if old == path:
            continue
        try:
            inode, size, head = _stat(session, old)
        except LogMissing:
            continue  # compressed or removed meanwhile
        if plan_read(prev, inode, size, head).restart is None:
            start, _ = bounded(int(prev["offset"]), size)
            return old, _read(session, old, start, size - start)
    return None


def _check_one(site_id: str, host: HostConfig, session: HostSession, log: LogFile,
               prev: dict | None) -> tuple[CheckResult, dict]:
    started = utcnow()
    inode, size, head = _stat(session, log.path)
    plan = plan_read(prev, inode, size, head)
    notes = []
    chunks: list[bytes] = []
    if plan.restart == "rotated":
        old = _rotated_tail(session, log.path, prev)
        if old:
            name, data = old
            chunks.append(data if data.endswith(b"\n") or not data else data + b"\n")
            notes.append(f"已读取轮转前文件 {name} 中未检查的 {len(data)} 字节")
        else:
            notes.append("未找到轮转前的文件，上次检查后写入旧文件的内容无法检查")
    if plan.restart:
        notes.insert(0, RESTART_ZH[plan.restart])
    # When the bound moved the start, one byte before it tells whether it falls on a line start.
    read_from = plan.start - 1 if plan.skipped else plan.start
    data = _read(session, log.path, read_from, size - read_from)
    lines, used = complete_lines(data, dropped_head=plan.skipped > 0, capped=plan.skipped > 0)
    chunks.append(lines)
    text = decode_log(b"".join(chunks))
    found = find_errors(text, log)
    # Skipping old history on a first run is expected; skipping new lines later is a finding.
    status, reason = judge(found, 0 if plan.restart == "first" else plan.skipped)
    if plan.skipped and plan.restart == "first":
        notes.append(f"文件较大，只读取了最后 {MAX_READ_BYTES // 1048576} MiB")
    if notes:
        reason += "（" + "；".join(notes) + "）"
    errors, critical = effective_patterns(log)
    # Critical lines first, so that the bound on raw never hides them behind ordinary errors.
    crit = set(found.critical_lines)
    shown = found.critical_lines + [ln for ln in found.error_lines if ln not in crit]
    header = (f"# {log.path} inode={inode} size={size} 读取字节 {read_from}-{read_from + used}"
              f"{' 跳过 ' + str(plan.skipped) + ' 字节' if plan.skipped else ''}"
              f"{' ' + plan.restart if plan.restart else ''}\n")
    raw = header + "\n".join(ln[:MAX_LINE_CHARS] for ln in shown[:MAX_RAW_LINES])
    if len(shown) > MAX_RAW_LINES:
        raw += f"\n# …… 另有 {len(shown) - MAX_RAW_LINES} 行未列出"
    result = CheckResult(
        check=CHECK, title=TITLE, site=site_id, host=host.name, target=log.path,
        value=len(found.error_lines), unit="行", status=status, reason=reason, raw=raw,
        code=(Code.OK if status is Status.OK else Code.LOG_CRITICAL_ERRORS if found.critical_lines
              else Code.LOG_NEW_ERRORS if found.error_lines else Code.LOG_READ_SKIPPED),
        threshold=(f"新增错误行（{'ORA-nnnnn，' if log.kind == 'oracle_alert' else ''}{'、'.join(errors)}）为警告；"
                   f"匹配严重模式（{'、'.join(critical) or '未配置'}）为异常"),
        started_at=started, finished_at=utcnow())
    n = min(HEAD_BYTES, size, len(head))
    position = {"inode": inode, "size": size, "offset": read_from + used,
                "head_sha256": head_digest(head, n), "head_len": n}
    return result, position


@check_task("log_errors", error_fields=None)  # per-log ERROR records below; a dropped connection is retried
def log_errors(site_id: str, host: HostConfig, pool: HostPool, positions: dict) -> tuple[list[CheckResult], dict]:
    """One record per log of `host` for the lines added since `positions`, and the positions of
    this host's logs after reading (merge them into the stored state once the evidence is kept).
    A log that could not be read keeps its previous position, so its lines are read next time."""
    base = dict(check=CHECK, title=TITLE, site=site_id, host=host.name)
    positions = positions or {}
    keys = {log.path: position_key(host.name, log.path) for log in host.logs}
    new_positions = {k: positions[k] for k in keys.values() if k in positions}
    if not host.logs:
        return [], new_positions
    started = utcnow()
    try:
        session = pool.get(host)
        session.connect()
    except Exception as exc:  # noqa: BLE001 - unreachable, key refused: each log is ERROR, run goes on
        if retry_pending(exc):
            raise
        return [error_result(exc, started_at=started, target=log.path, **base) for log in host.logs], new_positions
    results = []
    for log in host.logs:
        key = keys[log.path]
        try:
            rec, pos = _check_one(site_id, host, session, log, positions.get(key))
            new_positions[key] = pos
        except LogMissing as exc:
            rec = CheckResult(**base, target=log.path, status=Status.ERROR, reason=str(exc), code=code_for_exception(exc),
                              started_at=started, finished_at=utcnow())
        except Exception as exc:  # noqa: BLE001 - timeout, lost connection: this log is ERROR, the others go on
            if retry_pending(exc):
                raise  # the whole host again: positions are only kept from a complete read
            rec = error_result(exc, started_at=started, target=log.path, **base)
        results.append(rec)
    return results, new_positions


# ---------------------------------------------------------------- the stored state
def load_positions(path: Path) -> dict:
    """The positions saved by the last run; {} when there is none. A damaged file also gives {}
    (every log is then read from its start: errors are reported twice rather than lost)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _log.warning("log positions %s unreadable (%s); logs will be read from their start", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def save_positions(path: Path, positions: dict) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one), mode 0600."""
    write_atomic(Path(path), json.dumps(positions, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8"))
