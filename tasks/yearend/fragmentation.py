"""Fragmentation of the file server's layout-file tree, measured with the tools the host has.

ext2/3/4: `e4defrag -c` (its fragmentation score: 0-30 no problem, 31-55 a little fragmented, 56-
needs defragmentation); XFS: `xfs_db -r -c frag` (fragmentation factor); any filesystem with
FIEMAP: `filefrag` over a sample of the files (extents per file). A tool the host lacks gives
SKIPPED with the reason, never OK: nobody measured. Defragmentation changes the server, so it is
only ever a plan step (`plan_defragmentation`), run after approval like any other.
"""
from __future__ import annotations

import re
import shlex

from config.settings import Site
from tasks.approvals.plan import PlanStep
from tasks.connect.ssh import HostSession
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow
from tasks.yearend import file_scripts as scripts
from tasks.yearend.files import _checked, _session, settings

E4DEFRAG_WARN_SCORE = 56        # e4defrag's own "needs defrag" band
XFS_WARN_FACTOR_PCT = 30.0
FILEFRAG_WARN_EXTENTS = 1.5     # mean extents per file: small layout files should be one extent each
FILEFRAG_SAMPLE = 2000
_EXT_FS = {"ext2/ext3", "ext4", "ext3", "ext2"}  # stat -f -c %T says "ext2/ext3" for all three


def fragmentation(site: Site, session: HostSession | None = None) -> list[CheckResult]:
    """One record per applicable measurement: the filesystem's own tool, and filefrag."""
    cfg = settings(site)
    base = dict(site=site.site, host=cfg.host, target=cfg.layout_root)
    started = utcnow()
    try:
        with _session(site, session) as s:
            found = _checked(s.run_script(scripts.TOOLS, [cfg.layout_root, *cfg.tool_dirs]), "looking for tools")
            info = _parse_tools(found.stdout)
            fs, tools = info["fs"], info["tools"]
            out = [_fs_tool(s, cfg, fs, info["dev"], tools, base)]
            out.append(_filefrag(s, cfg, tools.get("filefrag"), base))
            return out
    except Exception as exc:  # noqa: BLE001 - an unreachable host is an ERROR record, not a crash
        return [error_result(exc, started_at=started, check="layout_fragmentation", title="版式文件碎片度量", **base)]


def _parse_tools(stdout: str) -> dict:
    info: dict = {"fs": "", "dev": "", "tools": {}}
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("fs", "dev"):
            info[kind] = rest.strip()
        elif kind == "tool":
            name, _, path = rest.partition(" ")
            if path.strip():
                info["tools"][name] = path.strip()
    return info


def _skipped(check: str, title: str, reason: str, code: Code, base: dict) -> CheckResult:
    return CheckResult(check=check, title=title, status=Status.SKIPPED, reason=reason, code=code.value, **base)


def _fs_tool(s: HostSession, cfg, fs: str, dev: str, tools: dict, base: dict) -> CheckResult:
    dirs = "、".join(cfg.tool_dirs)
    if fs in _EXT_FS:
        title = "文件系统碎片（e4defrag -c）"
        tool = tools.get("e4defrag")
        if not tool:
            return _skipped("fragmentation_e4defrag", title, f"主机 {cfg.host} 在 {dirs} 中没有 e4defrag，未度量碎片",
                            Code.TOOL_MISSING, base)
        res = s.run([tool, "-c", cfg.layout_root], timeout=cfg.command_timeout_s)
        m = re.search(r"Fragmentation score\s+(\d+)", res.stdout)
        if not m:
            return _failed_read("fragmentation_e4defrag", title, res, base)
        score = int(m.group(1))
        status = Status.WARN if score >= E4DEFRAG_WARN_SCORE else Status.OK
        return CheckResult(check="fragmentation_e4defrag", title=title, value=score, unit="分",
                           threshold=f"WARN ≥ {E4DEFRAG_WARN_SCORE}（e4defrag：56 以上需整理）", status=status,
                           code=Code.FRAGMENTED.value if status is Status.WARN else "",
                           reason=f"e4defrag 碎片评分 {score}", raw=res.stdout, **base)
    if fs == "xfs":
        title = "文件系统碎片（xfs_db -r -c frag）"
        tool = tools.get("xfs_db")
        if not tool:
            return _skipped("fragmentation_xfs", title, f"主机 {cfg.host} 在 {dirs} 中没有 xfs_db，未度量碎片",
                            Code.TOOL_MISSING, base)
        res = s.run([tool, "-r", "-c", "frag", dev], timeout=cfg.command_timeout_s)
        m = re.search(r"fragmentation factor\s+([\d.]+)%", res.stdout)
        if not m:
            return _failed_read("fragmentation_xfs", title, res, base)
        factor = float(m.group(1))
        status = Status.WARN if factor >= XFS_WARN_FACTOR_PCT else Status.OK
        return CheckResult(check="fragmentation_xfs", title=title, value=factor, unit="%",
                           threshold=f"WARN ≥ {XFS_WARN_FACTOR_PCT:g} %", status=status,
                           code=Code.FRAGMENTED.value if status is Status.WARN else "",
                           reason=f"{dev} 碎片系数 {factor:g}%", raw=res.stdout, **base)
    return _skipped("fragmentation_fs", "文件系统碎片", f"文件系统类型 {fs or '未知'} 没有 e4defrag / xfs_db 的碎片度量",
                    Code.NOT_APPLICABLE, base)


def _filefrag(s: HostSession, cfg, tool: str | None, base: dict) -> CheckResult:
    title = "版式文件区段数（filefrag）"
    if not tool:
        return _skipped("fragmentation_filefrag", title,
                        f"主机 {cfg.host} 在 {'、'.join(cfg.tool_dirs)} 中没有 filefrag，未度量", Code.TOOL_MISSING, base)
    res = s.run_script(scripts.FILEFRAG, [tool, cfg.layout_root, str(FILEFRAG_SAMPLE)], timeout=cfg.command_timeout_s)
    counts = [int(m.group(1)) for m in re.finditer(r": (\d+) extents? found", res.stdout)]
    if not counts and re.search(r"FIEMAP|FIBMAP|not supported|unsupported", res.stdout + res.stderr, re.I):
        # overlay and network filesystems do not report extents to an ordinary account
        return _skipped("fragmentation_filefrag", title, f"{cfg.layout_root} 所在文件系统不提供区段信息（filefrag："
                        f"{(res.stderr or res.stdout).strip()[-200:]}）", Code.NOT_APPLICABLE, base)
    if not res.ok or not counts:
        if res.ok:
            return _skipped("fragmentation_filefrag", title, f"{cfg.layout_root} 下没有版式文件", Code.NO_DATA, base)
        return _failed_read("fragmentation_filefrag", title, res, base)
    mean = sum(counts) / len(counts)
    status = Status.WARN if mean >= FILEFRAG_WARN_EXTENTS else Status.OK
    return CheckResult(check="fragmentation_filefrag", title=title, value=round(mean, 2), unit="区段/文件",
                       threshold=f"WARN ≥ {FILEFRAG_WARN_EXTENTS:g}", status=status,
                       code=Code.FRAGMENTED.value if status is Status.WARN else "",
                       reason=f"抽样 {len(counts)} 个文件，平均 {mean:.2f} 个区段，"
                              f"{sum(1 for c in counts if c > 1)} 个文件多于 1 个区段", **base)


def _failed_read(check: str, title: str, res, base: dict) -> CheckResult:
    return CheckResult(check=check, title=title, status=Status.ERROR, code=Code.COMMAND_FAILED.value,
                       reason=f"exit {res.exit_code}，输出无法解析：{(res.stderr or res.stdout).strip()[-300:]}",
                       raw=res.stdout + res.stderr, **base)


def plan_defragmentation(site: Site, results: list[CheckResult]) -> list[PlanStep]:
    """Defragmentation steps for what the measurement found fragmented; nothing when nothing is."""
    cfg = settings(site)
    steps = []
    for r in results:
        if r.status is not Status.WARN:
            continue
        if r.check == "fragmentation_e4defrag":
            steps.append(PlanStep(id="defrag:e4defrag", kind="command", target=f"{cfg.host}:{cfg.layout_root}",
                                  text=shlex.join(["e4defrag", cfg.layout_root]), phase="files",
                                  expect=f"整理 {cfg.layout_root} 下文件的碎片（e4defrag 评分 {r.value}）；文件内容不变"))
        elif r.check == "fragmentation_xfs":
            steps.append(PlanStep(id="defrag:xfs_fsr", kind="command", target=f"{cfg.host}:{cfg.layout_root}",
                                  text=shlex.join(["xfs_fsr", "-v", cfg.layout_root]), phase="files",
                                  expect=f"整理 {cfg.layout_root} 下文件的碎片（碎片系数 {r.value}%）；文件内容不变"))
    return steps
