"""The phase journal (迁移记录): each phase's start, end, commands, masked output and status, kept
in the evidence store as it happens, so a run killed at any instant can be resumed and a phase
that changed something is never run twice by accident.

Layout under the site's evidence bucket (objects are created once, never rewritten: object lock):
  <site>/migration/_runs/<run>/run.json                      who, which plan (SHA-256), when
  <site>/migration/_runs/<run>/phases/<nn>-<phase>.start-<k>  attempt k of a phase began
  <site>/migration/_runs/<run>/phases/<nn>-<phase>.json       the phase ended (its record)
A start without an end is a phase cut off mid-way (a kill, a lost worker): it is run again only if
the phase declares itself idempotent; otherwise the resume refuses and says what to check by hand.
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from config.migration import PHASES
from tasks.connect.ssh import CommandResult, HostSession
from tasks.core.masking import mask_text
from tasks.core.results import CheckResult, Status, utcnow, verdict

ALL_PHASES = PHASES + ("rollback",)
PHASE_ZH = {"preflight": "1. 迁移前检查", "plan": "2. 迁移方案", "freeze": "3. 停机冻结", "backup": "4. 最终备份",
            "transfer": "5. 传输与恢复", "verify": "6. 数据校验", "cutover": "7. 切换", "smoke": "8. 冒烟测试",
            "rollback": "9. 回退"}
# What may run again after an attempt was cut off, and why (a phase says so, or it is not rerun).
IDEMPOTENT = {
    "preflight": "只读检查",
    "plan": "只重新生成并比对方案（SHA-256 必须不变）",
    "freeze": "停止已停止的应用无变化；只观察最新票据时间",
    "backup": "再做一份新的备份文件，不覆盖旧文件",
    "transfer": "重新复制并以 --clean --if-exists 恢复，覆盖上次中断留下的部分对象（目标库在本次迁移前已确认为空）；"
                "Oracle RMAN DUPLICATE 由 RMAN 续做，跳过已复制的数据文件",
    "verify": "只读比对",
    "smoke": "健康检查与巡检只读；站点配置了测试票据（smoke_test_bill）时开具一张测试票据并冲红，写入目标库，"
             "在切换审批（第三次审批）范围内；重跑再开具并冲红一张，票据仍成对、互不影响",
    "rollback": "停止新应用、确认原数据源、启动原应用，重复执行结果相同",
}
STATUS_ZH = {"done": "完成", "failed": "失败", "refused": "拒绝执行", "awaiting_approval": "等待审批", "paused": "按要求暂停"}
PhaseStatus = Literal["done", "failed", "refused", "awaiting_approval", "paused"]


class CommandRecord(BaseModel):
    host: str
    command: str
    exit_code: int | None
    output: str = ""                 # masked, the tail
    seconds: float = 0.0


class PhaseRecord(BaseModel):
    phase: str
    title: str
    attempt: int = 0                 # 0: the phase did not begin (refused, awaiting an approval)
    status: PhaseStatus
    started_at: datetime
    finished_at: datetime
    idempotent: str = ""             # why it may be rerun ('' = it may not)
    commands: list[CommandRecord] = Field(default_factory=list)
    results: list[CheckResult] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    note: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def phase_no(phase: str) -> int:
    return ALL_PHASES.index(phase) + 1


class PhaseRefused(RuntimeError):
    """A phase cut off mid-way that may not be run again, or a phase that already ended."""


@dataclass
class Journal:
    """One run's phases in the evidence store (`store` = tasks.evidence.store.Store)."""
    store: Any
    site: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{self.site}/migration/_runs/{self.run_id}/"

    def write_run(self, info: dict) -> None:
        self.store.put_if_absent(self.prefix + "run.json", json.dumps(info, ensure_ascii=False, indent=1).encode())

    def run_info(self) -> dict | None:
        key = self.prefix + "run.json"
        return json.loads(self.store.get(key)) if self.store.exists(key) else None

    def _key(self, phase: str) -> str:
        return f"{self.prefix}phases/{phase_no(phase):02d}-{phase}"

    def records_all(self) -> list[PhaseRecord]:
        """Every record of the run: ended phases, failures, pauses, approvals awaited or refused."""
        return [PhaseRecord.model_validate_json(self.store.get(o.object_name))
                for o in self.store.list(self.prefix + "phases/") if o.object_name.endswith(".json")]

    def records(self) -> dict[str, PhaseRecord]:
        """Per phase, its 'done' record if it has one, else its latest record."""
        out: dict[str, PhaseRecord] = {}
        for rec in sorted(self.records_all(), key=lambda r: r.finished_at):
            if out.get(rec.phase) is None or out[rec.phase].status != "done":
                out[rec.phase] = rec
        return out

    def attempts(self, phase: str) -> int:
        return sum(1 for o in self.store.list(self._key(phase) + ".start-"))

    def begin(self, phase: str) -> int:
        """Claim the next attempt of `phase`; refuse a rerun the phase does not allow."""
        ended = self.records().get(phase)
        if ended is not None and ended.status == "done":
            raise PhaseRefused(f"阶段 {PHASE_ZH[phase]} 已完成（{ended.finished_at:%Y-%m-%d %H:%M:%S} UTC），不重复执行")
        n = self.attempts(phase)
        if n and phase not in IDEMPOTENT:
            raise PhaseRefused(f"阶段 {PHASE_ZH[phase]} 上次开始后没有结束记录（运行被中断），且该阶段不可重复执行："
                               f"请人工确认其命令的实际效果，再决定回退或手工完成 (phase {phase} was cut off and is not idempotent)")
        while not self.store.put_if_absent(f"{self._key(phase)}.start-{n + 1}", utcnow().isoformat().encode()):
            n += 1   # another worker took this attempt number: the store decides, never both
        return n + 1

    def end(self, rec: PhaseRecord) -> None:
        data = rec.model_dump_json(indent=1).encode()
        key = f"{self._key(rec.phase)}.json" if rec.status == "done" else \
            f"{self._key(rec.phase)}.{rec.status}-{rec.finished_at:%Y%m%dT%H%M%S%f}.json"
        if not self.store.put_if_absent(key, data):
            raise PhaseRefused(f"阶段 {rec.phase} 的结束记录已存在 ({key})：另一次运行已记录了它")


@dataclass
class PhaseRun:
    """What a phase does, as it does it: commands with masked output, check records, facts."""
    phase: str
    site: str
    started_at: datetime = field(default_factory=utcnow)
    commands: list[CommandRecord] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def run(self, session: HostSession, host: str, argv: list[str], timeout: float | None = None) -> CommandResult:
        began = time.monotonic()
        res = session.run(argv, timeout=timeout)
        self.commands.append(CommandRecord(host=host, command=res.command or shlex.join(argv), exit_code=res.exit_code,
                                           output=mask_text((res.stdout[-2000:] + res.stderr[-2000:]).strip()),
                                           seconds=round(time.monotonic() - began, 2)))
        return res

    def note(self, host: str, command: str, output: str = "", exit_code: int | None = 0, seconds: float = 0.0) -> None:
        """A step that is not an SSH command (SQL, an HTTP call, a copy through the worker)."""
        self.commands.append(CommandRecord(host=host, command=command, exit_code=exit_code,
                                           output=mask_text(output[-4000:]), seconds=round(seconds, 2)))

    def check(self, title: str, status: Status, reason: str, *, code: str = "", **kw) -> CheckResult:
        r = CheckResult(check=f"migration_{self.phase}", title=f"{PHASE_ZH[self.phase]}：{title}", site=self.site,
                        status=status, reason=reason, code=code or ("ok" if status is Status.OK else ""),
                        started_at=kw.pop("started_at", self.started_at), **kw)
        self.results.append(r)
        return r

    def failed(self) -> bool:
        return bool(self.results) and verdict(self.results) in (Status.FAIL, Status.ERROR, Status.SKIPPED)

    def record(self, attempt: int, status: PhaseStatus | None = None, note: str = "") -> PhaseRecord:
        st = status or ("failed" if self.failed() else "done")
        return PhaseRecord(phase=self.phase, title=PHASE_ZH[self.phase], attempt=attempt, status=st,
                           started_at=self.started_at, finished_at=utcnow(), idempotent=IDEMPOTENT.get(self.phase, ""),
                           commands=self.commands, results=self.results, facts=self.facts, note=note)
