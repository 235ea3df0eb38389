"""What the log check decides without touching a server: which bytes of a log are new since the
stored position, and which of the new lines are errors or critical errors (tasks/inspection/logs.py
reads the logs over SSH and keeps the positions)."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from config.hosts import LogFile
from tasks.core.results import Status

MAX_READ_BYTES = 4 * 1024 * 1024
HEAD_BYTES = 256   # the first bytes of a log, hashed to tell a rewritten file from a grown one
# ORA- errors that mean data loss, an instance crash or a stalled database (internal errors, block
# corruption, archiver stuck, shared pool exhausted, snapshot too old).
DEFAULT_ORA_CRITICAL = ("ORA-00600", "ORA-07445", "ORA-01578", "ORA-00257", "ORA-04031", "ORA-01555")
ORA_CODE = re.compile(r"ORA-\d{5}")


@dataclass(frozen=True)
class ReadPlan:
    start: int  # byte offset of the first byte to read
    skipped: int  # bytes between the stored offset (or 0) and `start` that are not read
    restart: str | None  # None, "first", "rotated", "truncated", "rewritten"


RESTART_ZH = {"first": "首次检查，读取整个文件", "rotated": "日志已轮转（inode 变化），从新文件开头读取",
               "truncated": "日志被截断（大小小于上次位置），从文件开头读取",
               "rewritten": "日志开头内容已变化（被重写），从文件开头读取"}


def head_digest(head: bytes, length: int) -> str:
    return hashlib.sha256(head[:length]).hexdigest()


def plan_read(prev: dict | None, inode: int, size: int, head: bytes, max_bytes: int = MAX_READ_BYTES) -> ReadPlan:
    """Where to start reading a log of this inode, size and first bytes, given its stored position."""
    restart: str | None = None
    if not prev:
        restart = "first"
    elif int(prev.get("inode", -1)) != inode:
        restart = "rotated"
    elif size < int(prev.get("offset", 0)):
        restart = "truncated"
    else:
        # Compare only as many bytes as were hashed last time: a log that was shorter than
        # HEAD_BYTES then has merely grown, which is not a rewrite.
        n = int(prev.get("head_len", min(HEAD_BYTES, int(prev.get("size", 0)))))
        if len(head) < n or head_digest(head, n) != prev.get("head_sha256"):
            restart = "rewritten"
    start = 0 if restart else int(prev["offset"])
    return ReadPlan(*bounded(start, size, max_bytes), restart)


def bounded(start: int, end: int, max_bytes: int = MAX_READ_BYTES) -> tuple[int, int]:
    """(first byte to read, bytes skipped): the newest max_bytes of [start, end)."""
    if end - start > max_bytes:
        return end - max_bytes, end - max_bytes - start
    return start, 0


def complete_lines(data: bytes, dropped_head: bool, capped: bool) -> tuple[bytes, int]:
    """The complete lines of a chunk and how many bytes of it are consumed. A chunk that starts
    mid-line (the bound cut it) loses that partial first line; a last line without its newline is
    left for the next run, unless the chunk is one endless line filling the whole bound."""
    lead = 0
    if dropped_head:
        nl = data.find(b"\n")
        lead = nl + 1 if nl >= 0 else len(data)
    last = data.rfind(b"\n")
    if last < lead:
        used = len(data) if capped else lead
        return data[lead:used], used
    return data[lead:last + 1], last + 1


def decode_log(data: bytes) -> str:
    # Chinese servers often write GBK/GB18030 logs (and Oracle alert logs in the NLS charset).
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def compile_patterns(patterns: list[str] | tuple[str, ...]) -> list[tuple[str, re.Pattern]]:
    out = []
    for p in patterns:
        try:
            out.append((p, re.compile(p)))
        except re.error:
            out.append((p, re.compile(re.escape(p))))
    return out


@dataclass
class Findings:
    error_lines: list[str]
    critical_lines: list[str]
    by_pattern: Counter  # pattern or ORA code -> number of lines
    critical_by_pattern: Counter


def effective_patterns(log: LogFile) -> tuple[list[str], list[str]]:
    """(error patterns, critical patterns); an Oracle alert log defaults to DEFAULT_ORA_CRITICAL."""
    critical = list(log.critical_patterns)
    if log.kind == "oracle_alert" and not critical:
        critical = list(DEFAULT_ORA_CRITICAL)
    return list(log.error_patterns), critical


def find_errors(text: str, log: LogFile) -> Findings:
    """Error and critical lines. In an Oracle alert log each ORA-nnnnn code is counted on its own
    (ORA-00600 and ORA-01555 need different actions); a critical line is also an error line."""
    errors, critical = effective_patterns(log)
    err_re, crit_re = compile_patterns(errors), compile_patterns(critical)
    is_oracle = log.kind == "oracle_alert"
    f = Findings([], [], Counter(), Counter())
    for line in text.splitlines():
        crit_hits = [p for p, rx in crit_re if rx.search(line)]
        codes = ORA_CODE.findall(line) if is_oracle else []
        err_hits = [p for p, rx in err_re if rx.search(line)]
        if not (crit_hits or codes or err_hits):
            continue
        f.error_lines.append(line)
        if codes:
            f.by_pattern.update(dict.fromkeys(codes, 1))
            err_hits = [p for p in err_hits if not p.startswith("ORA-")]  # already counted by code
        f.by_pattern.update(err_hits)
        if crit_hits:
            f.critical_lines.append(line)
            f.critical_by_pattern.update(crit_hits)
    return f


def _counts_zh(c: Counter) -> str:
    return "，".join(f"{k}×{n}" for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def judge(f: Findings, skipped_new: int) -> tuple[Status, str]:
    """Status and the Chinese reason of one log's new lines."""
    parts = []
    if f.critical_lines:
        status = Status.FAIL
        parts.append(f"新增 {len(f.error_lines)} 行错误，其中 {len(f.critical_lines)} 行匹配严重模式："
                     f"{_counts_zh(f.critical_by_pattern)}")
        parts.append(f"按模式统计：{_counts_zh(f.by_pattern)}")
    elif f.error_lines:
        status = Status.WARN
        parts.append(f"新增 {len(f.error_lines)} 行错误：{_counts_zh(f.by_pattern)}")
    else:
        status = Status.OK
        parts.append("无新增错误")
    if skipped_new:
        parts.append(f"新增内容超过单次读取上限 {MAX_READ_BYTES // 1048576} MiB，"
                     f"跳过了 {skipped_new / 1048576:.1f} MiB 未检查")
        if status == Status.OK:
            status = Status.WARN
    return status, "；".join(parts)


