"""Year-end on the file server (技术年结, QH row 14): layout (版式) files older than two full years packed
per month into archives, each archive re-read and every member verified by SHA-256, originals
removed only where the site allows it and only after that verification, one file extracted back
by bill code and number.

The steps are the plan's (tasks/approvals/plan.py): each step's text is the exact command that
runs, so an approval covers exactly what happens; `execute_step` refuses a text that is not a
command line this module would write. A step already done (its archive there and verifying, its
originals gone) is not run again and says so (QH row 14: resumable, idempotent).
"""
from __future__ import annotations

import base64
import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from config.settings import Site
from config.year_end import YearEndFiles
from tasks.approvals.plan import PlanStep, StepOutcome
from tasks.connect.ssh import CommandResult, HostError, HostSession
from tasks.core.atomic_file import write_atomic
from tasks.core.masking import mask_text
from tasks.core.results import utcnow
from tasks.yearend import file_scripts as scripts

ARCHIVE_PREFIX = "layout_archive:"
REMOVE_PREFIX = "layout_remove:"
_MONTH = re.compile(r"^(\d{4})/(0[1-9]|1[0-2])$")
_STEP_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class YearEndFilesError(Exception):
    """The site's year-end file settings or a step cannot be used as given."""


@dataclass(frozen=True)
class MonthFolder:
    month: str          # "2024/03"
    files: int
    bytes: int


def settings(site: Site) -> YearEndFiles:
    files = site.year_end.files if site.year_end else None
    if files is None:
        raise YearEndFilesError(f"site {site.site} has no year_end.files section (hint: add host, layout_root and "
                                f"archive_dir under year_end.files in its site file)")
    return files


def open_session(site: Site) -> HostSession:
    return HostSession(site.host(settings(site).host))


def archive_path(cfg: YearEndFiles, month: str) -> str:
    ext = "zip" if cfg.archive_format == "zip" else "tar.gz"
    return f"{cfg.archive_dir}/layout-{month.replace('/', '-')}.{ext}"


def list_path(cfg: YearEndFiles, month: str) -> str:
    return archive_path(cfg, month) + ".sha256"


def _command(script: str, *args: str) -> str:
    return shlex.join(["sh", "-c", script, "sh", *args])


def _args(cfg: YearEndFiles, month: str) -> list[str]:
    return [cfg.layout_root, month, archive_path(cfg, month), list_path(cfg, month), cfg.archive_format]


def survey(site: Site, session: HostSession | None = None) -> tuple[list[MonthFolder], set[str]]:
    """The month folders under the layout root (files, bytes) and the archive names already written."""
    cfg = settings(site)
    with _session(site, session) as s:
        res = _checked(s.run_script(scripts.SURVEY, [cfg.layout_root, cfg.archive_dir]), "survey of layout files")
    months, archives = [], set()
    for line in res.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "month":
            month, n, size = rest.split()
            if _MONTH.match(month):
                months.append(MonthFolder(month, int(n), int(size)))
        elif kind == "archive":
            archives.add(rest)
    return months, archives


def months_to_pack(cfg: YearEndFiles, closing_year: int, months: list[MonthFolder], archives: set[str]) -> list[str]:
    """Months older than `keep_full_years` full years at the end of the closing year: folders still
    there, and months whose archive exists (their originals may be gone), so that the plan renders
    the same before and after it ran."""
    last = closing_year - cfg.keep_full_years
    found = {m.month for m in months}
    for name in archives:
        m = re.match(r"^layout-(\d{4})-(\d{2})\.(?:tar\.gz|zip)$", name)
        if m:
            found.add(f"{m.group(1)}/{m.group(2)}")
    return sorted(m for m in found if int(m[:4]) <= last)


def plan_file_archives(site: Site, closing_year: int, session: HostSession | None = None) -> list[PlanStep]:
    """One step per month archive, then (where remove_originals) one removal step per month."""
    cfg = settings(site)
    months, archives = survey(site, session)
    chosen = months_to_pack(cfg, closing_year, months, archives)
    target = f"{cfg.host}:{cfg.layout_root}"
    steps = []
    for month in chosen:
        y, m = month.split("/")
        steps.append(PlanStep(
            id=f"{ARCHIVE_PREFIX}{y}-{m}", kind="file", target=target, text=_command(scripts.ARCHIVE, *_args(cfg, month)),
            expect=f"将 {y}年{m}月 的版式文件打包为 {archive_path(cfg, month)}（{cfg.archive_format}），重读归档逐个核对 "
                   f"SHA-256 后写出成员清单 {list_path(cfg, month)}；原文件不动", phase="files"))
    if cfg.remove_originals:
        for month in chosen:
            y, m = month.split("/")
            steps.append(PlanStep(
                id=f"{REMOVE_PREFIX}{y}-{m}", kind="file", target=target, text=_command(scripts.REMOVE, *_args(cfg, month)),
                expect=f"重读归档 {archive_path(cfg, month)} 并逐个核对成员 SHA-256，原文件与成员清单一致后删除 "
                       f"{y}年{m}月 的原版式文件（站点已允许删除原件）；任一核对不符则不删除", phase="files"))
    return steps


def _month_of(step: PlanStep) -> tuple[str, str]:
    for prefix in (ARCHIVE_PREFIX, REMOVE_PREFIX):
        if step.id.startswith(prefix):
            m = _STEP_MONTH.match(step.id[len(prefix):])
            if m:
                return prefix, f"{m.group(1)}/{m.group(2)}"
    raise YearEndFilesError(f"step {step.id!r} is not a layout-file step (hint: ids are {ARCHIVE_PREFIX}yyyy-mm "
                            f"or {REMOVE_PREFIX}yyyy-mm)")


def _expected_text(cfg: YearEndFiles, step: PlanStep) -> str:
    prefix, month = _month_of(step)
    return _command(scripts.ARCHIVE if prefix == ARCHIVE_PREFIX else scripts.REMOVE, *_args(cfg, month))


def already_done(site: Site, step: PlanStep, session: HostSession | None = None) -> bool:
    """Archive step: the archive and its member list exist and the archive verifies member by member.
    Removal step: the archive verifies and none of its listed originals is left."""
    cfg = settings(site)
    prefix, month = _month_of(step)
    with _session(site, session) as s:
        verified = s.run_script(scripts.VERIFY, _args(cfg, month), timeout=cfg.command_timeout_s)
        if not verified.ok:
            return False
        if prefix == ARCHIVE_PREFIX:
            return True
        left = _checked(s.run_script(scripts.REMAINING, [cfg.layout_root, list_path(cfg, month)]), "count of originals")
        return left.stdout.strip() == "0"


def execute_step(site: Site, step: PlanStep, session: HostSession | None = None) -> StepOutcome:
    """Run one approved step exactly as planned, unless it is already done."""
    cfg = settings(site)
    prefix, month = _month_of(step)
    if step.text != _expected_text(cfg, step):
        raise YearEndFilesError(f"step {step.id}: its command is not the one this site's settings give "
                                f"(the plan was made with other year_end.files settings: re-plan and approve again)")
    started = utcnow()
    with _session(site, session) as s:
        if already_done(site, step, s):
            what = "归档已存在且逐个成员核对通过" if prefix == ARCHIVE_PREFIX else "原文件已删除（归档核对通过）"
            return StepOutcome(step_id=step.id, status="already_done", output=f"{what}，本次未重复执行",
                               started_at=started, finished_at=utcnow(), facts=_done_facts(s, cfg, month))
        argv = shlex.split(step.text)
        if shlex.join(argv) != step.text:
            raise YearEndFilesError(f"step {step.id}: its text does not re-quote to itself; refusing to run it")
        res = s.run(argv, timeout=cfg.command_timeout_s)
    if not res.ok:
        return StepOutcome(step_id=step.id, status="failed", started_at=started, finished_at=utcnow(),
                           output=mask_text(f"exit {res.exit_code}: {res.stderr.strip()[-4000:]}"),
                           facts={"month": month, "exit_code": res.exit_code})
    if prefix == ARCHIVE_PREFIX:
        facts = {"month": month, "archive": archive_path(cfg, month), "member_list": list_path(cfg, month),
                 **parse_archive_output(res.stdout)}
        output = f"已打包 {facts['member_count']} 个文件（{facts['member_bytes']} 字节），归档 {facts['archive_bytes']} 字节，逐个核对一致"
    else:
        removed = int(re.search(r"removed (\d+)", res.stdout).group(1)) if "removed" in res.stdout else 0
        facts = {"month": month, "archive": archive_path(cfg, month), "removed": removed}
        output = f"归档核对通过后删除原文件 {removed} 个"
    return StepOutcome(step_id=step.id, status="done", output=output, started_at=started, finished_at=utcnow(),
                       facts=facts)


def parse_archive_output(stdout: str) -> dict:
    """The archive script's report: members (path, sha256, size), their count and bytes, the archive's size."""
    section, hashes, sizes, archive_bytes = "", {}, {}, None
    for line in stdout.splitlines():
        if line.startswith("#archive "):
            archive_bytes = int(line.split()[1])
        elif line.startswith("#"):
            section = line[1:].strip()
        elif section == "members" and line:
            digest, _, path = line.partition("  ")
            hashes[path] = digest
        elif section == "sizes" and line:
            size, _, path = line.partition(" ")
            sizes[path] = int(size)
    members = [{"path": p, "sha256": h, "size": sizes.get(p)} for p, h in sorted(hashes.items())]
    return {"members": members, "member_count": len(members), "member_bytes": sum(sizes.values()),
            "archive_bytes": archive_bytes}


def member_lists(outcomes: list[StepOutcome]) -> dict[str, str]:
    """Each archive's member list as an evidence file: name -> text (`<sha256>  <size>  <path>` per
    member), for the bundle beside the step records."""
    out = {}
    for o in outcomes:
        if o.step_id.startswith(ARCHIVE_PREFIX) and o.facts.get("members"):
            name = f"layout_archives/{o.step_id[len(ARCHIVE_PREFIX):]}.sha256.txt"
            out[name] = "".join(f"{m['sha256']}  {m.get('size') if m.get('size') is not None else '-'}  {m['path']}\n"
                                for m in o.facts["members"])
    return out


def _done_facts(s: HostSession, cfg: YearEndFiles, month: str) -> dict:
    listed = s.run(["cat", list_path(cfg, month)])
    members = [{"path": p, "sha256": h} for h, _, p in (ln.partition("  ") for ln in listed.stdout.splitlines()) if p]
    return {"month": month, "archive": archive_path(cfg, month), "members": members, "member_count": len(members)}


def extract(site: Site, bill_code: str, bill_number: str, dest: Path, session: HostSession | None = None) -> Path:
    """One layout file back, by 票据代码 + 票据号码, from its month archive (else the original), written
    into the folder `dest`; its SHA-256 is checked against the member list, so it is byte-identical."""
    if not re.fullmatch(r"\d{8}", bill_code or ""):
        raise YearEndFilesError(f"bill code {bill_code!r} must be 8 digits (票据代码)")
    if not re.fullmatch(r"\d{10}", bill_number or ""):
        raise YearEndFilesError(f"bill number {bill_number!r} must be 10 digits (票据号码)")
    cfg = settings(site)
    with _session(site, session) as s:
        res = s.run_script(scripts.EXTRACT, [cfg.layout_root, cfg.archive_dir, bill_code + bill_number],
                           timeout=cfg.command_timeout_s)
    if res.exit_code == 20:
        raise FileNotFoundError(f"no layout file for bill {bill_code} {bill_number} on {cfg.host} "
                                f"(neither in {cfg.archive_dir} nor under {cfg.layout_root})")
    _checked(res, f"extract of {bill_code}{bill_number}")
    source, expected, data_b64 = (res.stdout.split("\n") + ["", "", ""])[:3]
    data = base64.b64decode(data_b64.strip(), validate=True)
    got = hashlib.sha256(data).hexdigest()
    if got != expected.strip():
        raise YearEndFilesError(f"layout file {bill_code}{bill_number} read from {source}: SHA-256 {got} differs from "
                                f"the member list's {expected.strip()} (the archive may be damaged: verify it)")
    name = source.split()[-1].rsplit("/", 1)[-1]
    target = Path(dest) / name
    write_atomic(target, data)
    return target


# ---------------------------------------------------------------- helpers
class _session:
    """Use the caller's session, or open one for this call and close it after."""

    def __init__(self, site: Site, session: HostSession | None):
        self.site, self.given, self.own = site, session, None

    def __enter__(self) -> HostSession:
        if self.given is not None:
            return self.given
        self.own = open_session(self.site)
        return self.own

    def __exit__(self, *exc) -> None:
        if self.own is not None:
            self.own.close()


def _checked(res: CommandResult, what: str) -> CommandResult:
    if not res.ok:
        raise HostError(f"{what} on {res.host} failed (exit {res.exit_code}): {mask_text(res.stderr.strip()[-1000:])}")
    return res
