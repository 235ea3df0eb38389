"""Disk usage over SSH (`df -P -k`): the one reader for the inspection's disk check, the backup
folder's space and the tablespaces' filesystems. POSIX output, parsed whatever the locale, with
wrapped lines (a long device name) and `-` for pseudo filesystems."""
from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.connect.ssh import HostError, HostSession, where


class DfFailed(HostError):
    """df could not measure some paths; `partial` holds those it did measure."""

    def __init__(self, message: str, partial: list["MountUsage"], failures: dict[str, str]):
        super().__init__(message)
        self.partial = partial
        self.failures = failures


@dataclass
class MountUsage:
    filesystem: str
    size_kb: int
    used_kb: int
    avail_kb: int
    use_pct: float
    mounted_on: str
    path: str  # the path asked about (the mount point when df was run without paths)


_NUM = r"(\d+|-)"
_ROW = re.compile(rf"^(?P<fs>\S.*?)\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+(\d+%|-)\s+(?P<mnt>/.*)$")
_WRAPPED = re.compile(rf"^\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+(\d+%|-)\s+(?P<mnt>/.*)$")


def _kb(v: str) -> int:
    return 0 if v == "-" else int(v)


def _usage(fs: str, size: str, used: str, avail: str, pct: str, mnt: str) -> MountUsage:
    u, a = _kb(used), _kb(avail)
    if pct != "-":
        use = float(pct.rstrip("%"))  # what the server's own df says, as an engineer reads it
    else:
        use = round(u * 100 / (u + a), 1) if u + a else 0.0
    return MountUsage(fs, _kb(size), u, a, use, mnt, mnt)


def parse_df_p(text: str) -> list[MountUsage]:
    """Rows of POSIX `df -P -k` output. The header (English or Chinese) is skipped; a filesystem
    name alone on its line continues on the next; mount points may contain spaces."""
    rows: list[MountUsage] = []
    pending: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if i == 1 and not _ROW.match(line):
            continue  # header: "Filesystem 1024-blocks ..." or "文件系统 1024-块 ..."
        if pending is not None:
            m = _WRAPPED.match(line)
            if not m:
                raise ValueError(f"df output line {i}: expected the figures of filesystem {pending!r}, got {line!r}")
            rows.append(_usage(pending, *m.groups()[:4], m.group("mnt")))
            pending = None
            continue
        m = _ROW.match(line)
        if m:
            rows.append(_usage(m.group("fs"), *m.groups()[1:5], m.group("mnt")))
        elif len(line.split()) == 1 and not line[0].isspace():
            pending = line.strip()
        else:
            raise ValueError(f"df output line {i} is not a df -P row: {line!r} (hint: was df run with -P -k?)")
    if pending is not None:
        raise ValueError(f"df output ends after filesystem {pending!r} without its figures")
    return rows


def disk_usage(session: HostSession, paths: list[str]) -> list[MountUsage]:
    """Usage of the filesystems holding `paths`, one row per path in the same order.
    LC_ALL=C keeps the output in the C locale on servers set to zh_CN (the parser copes either way).
    Raises DfFailed (with the rows it could read) when df cannot measure some paths."""
    if not paths:
        return []
    res = session.run(["env", "LC_ALL=C", "df", "-P", "-k", *paths])
    rows = parse_df_p(res.stdout)
    if res.ok and len(rows) == len(paths):
        for row, p in zip(rows, paths):
            row.path = p
        return rows
    # Some path failed (missing, permission): measure each alone so the others still count.
    partial, failures = [], {}
    for p in paths:
        one = session.run(["env", "LC_ALL=C", "df", "-P", "-k", p])
        got = parse_df_p(one.stdout) if one.ok else []
        if len(got) == 1:
            got[0].path = p
            partial.append(got[0])
        else:
            failures[p] = (one.stderr or one.stdout).strip()[:500] or f"exit code {one.exit_code}"
    if failures:
        detail = "; ".join(f"{p}: {why}" for p, why in failures.items())
        raise DfFailed(f"df on {where(session.cfg)} could not measure {detail} (hint: check the mounts "
                       f"configured for this host)", partial, failures)
    return partial
