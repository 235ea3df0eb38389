"""The one result model every check and runbook step returns (docs/architecture.md, "A run, from site file to evidence").

A run's verdict is the worst status of its records. SKIPPED and ERROR never count as passed:
SKIPPED means "not checked" and ERROR means "could not be measured", and an auditor must not
read either as "fine".
"""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Iterable

from pydantic import BaseModel, Field

from tasks.core import clock
from tasks.core.masking import mask_text
from tasks.core.error_codes import code_for_exception
from tasks.core.reason_codes import Code


class Status(str, Enum):
    OK = "OK"
    WARN = "WARN"
    SKIPPED = "SKIPPED"
    FAIL = "FAIL"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        # Order for "worst of": a skipped check outranks a warning because nobody looked;
        # ERROR is worst because not even the measurement is known.
        return _RANK[self]

    @property
    def label_zh(self) -> str:
        return _LABEL_ZH[self]


_RANK = {Status.OK: 0, Status.WARN: 1, Status.SKIPPED: 2, Status.FAIL: 3, Status.ERROR: 4}
_LABEL_ZH = {
    Status.OK: "正常",
    Status.WARN: "警告",
    Status.SKIPPED: "未检查",
    Status.FAIL: "异常",
    Status.ERROR: "无法检查",
}


_CODES = frozenset(c.value for c in Code)


def utcnow() -> datetime:
    # tasks/core/clock.py: the real time, or a backfill's past one
    return clock.now()


class CheckResult(BaseModel):
    """What was checked, on what, the measured value, the threshold, the status and the evidence."""

    check: str = Field(description="machine name of the check, e.g. disk_usage")
    title: str = Field(description="the check's name in the report (Chinese)")
    site: str
    host: str | None = None
    target: str = Field(default="", description="the object checked: a mount, a tablespace, a backup file")
    value: float | int | str | None = None
    unit: str = ""
    threshold: str = ""
    status: Status
    reason: str = Field(default="", description="why this status, in the engineer's words")
    code: str = Field(default="", description="why this status, machine-readable and stable (tasks/core/reason_codes.py); "
                                              "'ok' for OK records")
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)
    raw: str = Field(default="", description="the raw output judged from, masked")

    def model_post_init(self, __context: Any) -> None:
        # Masking here, not at each call site, so no check can forget it.
        self.raw = mask_text(self.raw)[:20000]
        self.reason = mask_text(self.reason)
        if not self.code and self.status is Status.OK:
            self.code = Code.OK.value
        if self.code and self.code not in _CODES:
            raise ValueError(f"reason code {self.code!r} is not listed in tasks/core/reason_codes.py")

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def verdict(results: Iterable[CheckResult]) -> Status:
    """The worst status; an empty run is SKIPPED (nothing was checked, so nothing passed)."""
    statuses = [r.status for r in results]
    if not statuses:
        return Status.SKIPPED
    return max(statuses, key=lambda s: s.rank)


def run_failed(v: Status) -> bool:
    """Whether the Prefect run must end Failed (docs/architecture.md: FAIL or ERROR)."""
    return v in (Status.FAIL, Status.ERROR)


def grade(value: float, warn_at: float, fail_at: float, *, higher_is_worse: bool = True) -> Status:
    """Compare a measurement with a WARN and a FAIL threshold."""
    if higher_is_worse:
        if value >= fail_at:
            return Status.FAIL
        return Status.WARN if value >= warn_at else Status.OK
    if value < fail_at:
        return Status.FAIL
    return Status.WARN if value < warn_at else Status.OK


def error_result(exc: BaseException, *, started_at: datetime | None = None, raw: str = "",
                 code: str | None = None, **fields: Any) -> CheckResult:
    """An ERROR record for a check that could not be measured (host unreachable, login refused,
    timeout): the run goes on with its other checks and the report says exactly why. Its code
    comes from the exception (error_codes.code_for_exception) unless one is given."""
    return CheckResult(
        status=Status.ERROR,
        reason=f"{type(exc).__name__}: {exc}",
        code=code or code_for_exception(exc),
        raw=raw,
        started_at=started_at or utcnow(),
        finished_at=utcnow(),
        **fields,
    )
