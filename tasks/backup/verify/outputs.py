"""What the verification's steps hand each other, typed and immutable.

Each step takes what it needs and returns what it found; the flow passes the results on
(flows/backup_verification.py), so the data flow is visible there and a step can be tested alone:
  locate/take -> Located -> validate -> Validated
  Located -> restore -> Restored -> verify (Located, Restored) -> Verified -> cleanup (Restored)
The year-end and migration runbooks are built the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from config.backup_verification import BackupVerificationConfig
from tasks.backup.verify import reading as rd
from tasks.backup.verify import measure
from tasks.backup.verify.locate import BackupFile
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow

STEP_ZH = {"locate": "1. 定位备份", "validate": "2. 不恢复校验", "restore": "3. 恢复到临时库",
           "verify": "4. 比对校验", "cleanup": "5. 清理临时库"}


@dataclass(frozen=True)
class VerifyContext:
    """What every step reads and none writes: the site, its time zone, its verification settings."""
    site: str
    tz: str
    cfg: BackupVerificationConfig

    def record(self, step: str, title: str, status: Status, reason: str, started: datetime, **kw) -> CheckResult:
        return CheckResult(check=f"backup_{step}", title=f"{STEP_ZH[step]}：{title}", site=self.site,
                           host=kw.pop("host", self.cfg.host), status=status, reason=reason, started_at=started,
                           finished_at=kw.pop("finished_at", utcnow()), **kw)

    def skipped(self, step: str, title: str, why: str, code: Code = Code.EARLIER_STEP_FAILED) -> CheckResult:
        return self.record(step, title, Status.SKIPPED, why, utcnow(), code=code)


def _ok(records: list[CheckResult]) -> bool:
    return bool(records) and all(r.status is Status.OK for r in records)


@dataclass(frozen=True)
class Located:
    """Step 1: the backup, and production measured in its snapshot when we took it ourselves."""
    records: list[CheckResult]
    backup: BackupFile | None = None
    source: measure.Measurement | None = None   # measured inside the backup's snapshot, if we took it
    source_sample: dict | None = None           # the sampled bills read in that snapshot (memory only)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.backup is not None and _ok(self.records)

    def as_of(self, ctx: VerifyContext) -> rd.AsOf | None:
        """Our own backup: its snapshot, all rows. Someone else's: only rows issued before it."""
        if self.backup is None or self.backup.taken_by_us:
            return None
        local = self.backup.taken_at.astimezone(ZoneInfo(ctx.tz)).replace(tzinfo=None)
        d = ctx.cfg.dialect
        return rd.AsOf(before=local, cutoff_columns={k: measure.catalog_name(d, v) for k, v in ctx.cfg.cutoff_columns.items()})

    def mutable(self, ctx: VerifyContext) -> dict[str, list[str]]:
        return {} if self.backup is None or self.backup.taken_by_us else ctx.cfg.mutable_columns


@dataclass(frozen=True)
class Validated:
    """Step 2: the backup read without restoring it."""
    records: list[CheckResult]

    @property
    def ok(self) -> bool:
        return _ok(self.records)


@dataclass(frozen=True)
class Restored:
    """Step 3: the scratch copy, if one was created (cleanup drops exactly that one)."""
    records: list[CheckResult]
    scratch: str | None = None
    created: bool = False
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.scratch is not None and self.seconds is not None and _ok(self.records)


@dataclass(frozen=True)
class Verified:
    """Step 4: the comparison's records and the files it leaves in the bundle."""
    records: list[CheckResult]
    files: dict[str, str] = field(default_factory=dict)


def cleanup_records(ctx: VerifyContext, restored: Restored, keep: bool, kind_zh: str,
                    drop: Callable[[str], str]) -> list[CheckResult]:
    """Step 5 for every backend: drop the scratch copy this run created, and only that one (kept,
    with a WARN, when the verification failed and the site keeps failures for diagnosis).
    `drop(scratch)` drops it and says what it did; `kind_zh` is 临时库 or 临时 schema."""
    started = utcnow()
    if not restored.created:
        return [ctx.record("cleanup", kind_zh, Status.OK, f"未创建{kind_zh}，无需清理", started)]
    if keep:
        return [ctx.record("cleanup", kind_zh, Status.WARN, f"验证未通过，按 keep_on_failure 保留{kind_zh} "
                           f"{restored.scratch} 供排查；排查后请删除", started, target=restored.scratch,
                           code=Code.SCRATCH_KEPT)]
    try:
        done = drop(restored.scratch)
    except Exception as exc:  # noqa: BLE001 - the record says why; the evidence is still stored
        return [error_result(exc, started_at=started, check="backup_cleanup", title=f"{STEP_ZH['cleanup']}：{kind_zh}",
                             site=ctx.site, host=ctx.cfg.host, target=restored.scratch or "")]
    return [ctx.record("cleanup", kind_zh, Status.OK, done, started, target=restored.scratch)]
