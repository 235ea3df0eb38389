"""What every duty's flow does at its end: report, evidence bundle, Prefect artifact, honest state.

Order matters: the evidence is stored first, and only then does a FAIL or ERROR verdict fail the
Prefect run, so that a failed inspection still leaves its record (docs/architecture.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from config.problems import SiteConfigError
from config.secrets import SecretMissing
from config.settings import Site
from flows.cli_interrupt import EVIDENCE_IN_PROCESS
from flows.duty_slot import DutyBusy
from tasks.approvals.gate import ApprovalRefused
from tasks.evidence.bundle import BundleWriter, ChainFinding, StoredBundle
from tasks.evidence.sign import fingerprint
from tasks.core import clock
from tasks.core.reports import format_value, local_time, render_both
from tasks.core.results import CheckResult, Status, run_failed, utcnow, verdict

_SUMMARY_ORDER = [Status.OK, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIPPED]
# How many distinct problem items the one-line summary names before "and N more".
SUMMARY_ITEMS = 10


class VerdictFailed(RuntimeError):
    """Raised after the evidence is stored, so the Prefect run ends Failed; carries the outcome
    so the CLI can still print the findings."""

    def __init__(self, message: str, outcome: "RunOutcome | None" = None):
        super().__init__(message)
        self.outcome = outcome


class BadInput(ValueError):
    """A parameter or a site setting the user can fix (the message names it and gives a hint)."""


# Exceptions that end a run without being a crash: a failed verdict, input the user can fix, a run
# that gave up waiting for another run of its duty, and a plan without a valid approval.
NOT_A_CRASH = (VerdictFailed, BadInput, SiteConfigError, SecretMissing, DutyBusy, ApprovalRefused)


class _NoTracebackUnlessCrash(logging.Filter):
    """Prefect's flow engine logs every exception of a flow run with its traceback. A FAIL verdict
    is a finding and a bad parameter a mistake to fix, not crashes: log them as one line (the
    terminal, the Prefect UI); a real crash keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, NOT_A_CRASH):
            record.msg, record.args = "%s", (str(exc),)
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("prefect.flow_runs").addFilter(_NoTracebackUnlessCrash())


@dataclass
class RunOutcome:
    site: str
    duty: str
    verdict: Status
    results: list[CheckResult]
    bundle: StoredBundle
    extra: dict = field(default_factory=dict)


def outbox_dir(site: Site) -> Path:
    p = Path(site.evidence.outbox)
    if not p.is_absolute() and site.source is not None:
        p = site.source.parent / p
    return p.resolve()


def state_dir(site: Site) -> Path:
    """Where a site's state between runs lives (log positions): site.state_dir, or beside the outbox."""
    if site.state_dir:
        p = Path(site.state_dir)
        if not p.is_absolute() and site.source is not None:
            p = site.source.parent / p
        return p.resolve()
    return outbox_dir(site).parent.parent / "state" / site.site


def current_run_id() -> str:
    return str(flow_run.id or "local")


def report_rows(results: list[CheckResult], tz: str) -> list[dict]:
    rows = []
    for r in results:
        d = r.model_dump(mode="json")
        d["where"] = " ".join(x for x in (r.host or "", r.target) if x)
        d["value_text"] = format_value(r)
        d["status_zh"] = r.status.label_zh
        d["checked_local"] = local_time(r.finished_at, tz, "%m-%d %H:%M:%S")
        rows.append(d)
    return rows


def suggestions(results: list[CheckResult]) -> list[str]:
    """改进建议 (MZ 一.10): one line per finding, worst first."""
    bad = sorted((r for r in results if r.status != Status.OK), key=lambda r: -r.status.rank)
    return [f"【{r.status.label_zh}】{r.title}（{' '.join(x for x in (r.host or '', r.target) if x)}）：{r.reason or '见明细'}"
            for r in bad]


def chain_results(site: str, findings: list[ChainFinding]) -> list[CheckResult]:
    """Evidence-chain findings (a rewritten or removed newest bundle, a fork, no signature) as records."""
    return [CheckResult(check="evidence_chain", title="证据链校验", site=site, target=f.code, value=f.code,
                        status=Status(f.status), reason=f.detail, code=f.code) for f in findings]


@task(name="store_evidence", cache_policy=NONE, retries=0)
def store_evidence(site: Site, duty: str, period: str, form: str, title: str, kind_zh: str,
                   results: list[CheckResult], started_at: datetime, engineer: str = "",
                   extra_files: dict[str, bytes | str] | None = None,
                   approvals: list[dict] | None = None, context: dict | None = None,
                   render_only: dict | None = None) -> StoredBundle:
    # `context` is the form's own data, kept in result.json; `render_only` reaches only the
    # templates (the service report's embedded charts would bloat result.json).
    form_extra = dict(context or {})  # form-specific fields (the pre-holiday check's holiday, roster)
    finished_at = utcnow()
    run_id = current_run_id()
    writer = BundleWriter(site.site, duty, period, run_id, started_at, site.evidence, outbox_dir(site))
    EVIDENCE_IN_PROCESS[writer.prefix] = "writing"
    results = results + chain_results(site.site, writer.chain_findings())  # tampering is a finding of this run
    v = verdict(results)
    counts = {s: sum(1 for r in results if r.status == s) for s in _SUMMARY_ORDER}
    context = dict(
        hospital=site.name, title=title, kind_zh=kind_zh, period=period, timezone=site.timezone,
        started_local=local_time(started_at, site.timezone), finished_local=local_time(finished_at, site.timezone),
        flow_run_id=run_id, verdict=v.value, verdict_zh=v.label_zh, engineer=engineer,
        summary=[{"status": s.value, "label": s.label_zh, "count": c} for s, c in counts.items() if c],
        results=report_rows(results, site.timezone), suggestions=suggestions(results),
        evidence_prefix=writer.prefix, evidence_key=writer.public_key and f"{writer.public_key}（{fingerprint(writer.public_key)}）",
    )
    context.update(form_extra)
    context.update(render_only or {})
    for name, text in render_both(form, **context).items():
        writer.add_file(name, text)
    writer.add_json("result.json", {
        "site": site.site, "duty": duty, "period": period, "verdict": v.value, "flow_run_id": run_id,
        "form": form, "context": form_extra, "approvals": approvals or [],
        "started_at": started_at.isoformat(), "finished_at": finished_at.isoformat(),
        "results": [r.model_dump(mode="json") for r in results],
    })
    for name, data in (extra_files or {}).items():
        writer.add_file(name, data)
    # A backfilled run (tasks/core/clock.py) says so in its manifest: its times are not the real ones.
    extra = clock.backdated_note(finished_at)
    bundle = writer.finish(verdict=v.value, finished_at=finished_at, approvals=approvals or [], extra=extra)
    EVIDENCE_IN_PROCESS[writer.prefix] = bundle.location
    logger = get_run_logger()
    where = bundle.report_url or f"outbox {outbox_dir(site)}/{bundle.prefix}"
    logger.info("evidence bundle %s stored in %s", bundle.prefix, bundle.location)
    key = f"{duty.replace('_', '-')}-{site.site}".lower()
    # The verdict and the report's link as markdown (a table artifact shows no links); the items
    # that are not OK as a table artifact, which the Prefect UI lays out and sorts itself.
    create_markdown_artifact(
        key=key,
        markdown=(f"## {site.name} {title}: **{v.value}**\n\n证据包 `{bundle.prefix}` ({bundle.location})\n\n"
                  f"[打开报告 report.html]({bundle.report_url})\n" if bundle.report_url else
                  f"## {site.name} {title}: **{v.value}**\n\n证据包 `{bundle.prefix}` 暂存于本地 outbox，下次运行时上传\n"),
        description=f"{title} evidence: {where}",
    )
    create_table_artifact(
        key=f"{key}-findings",
        table=[{"项目": r.title, "对象": f"{r.host or ''} {r.target}".strip(), "结果": r.status.value, "说明": r.reason[:200]}
               for r in results if r.status != Status.OK] or [{"项目": "—", "对象": "—", "结果": "OK", "说明": "无异常"}],
        description=f"{title}: items not OK ({bundle.prefix})",
    )
    return bundle


def finish(site: Site, duty: str, results: list[CheckResult], bundle: StoredBundle,
           raise_on_failure: bool = True, strict: bool = False) -> RunOutcome:
    """Return the outcome, or fail the run once the evidence is safe. `strict`: anything but OK
    fails it (a verification passes only if every step passed; a WARN or SKIPPED step is not a pass)."""
    # As found under the chain's lock; once, also when a caller finishes the same outcome again.
    results = results + [r for r in chain_results(site.site, list(bundle.findings))
                         if not any(x.check == r.check and x.target == r.target for x in results)]
    v = verdict(results)
    outcome = RunOutcome(site.site, duty, v, results, bundle)
    failing = (lambda s: s is not Status.OK) if strict else run_failed
    if raise_on_failure and failing(v):
        raise VerdictFailed(summary_line(outcome, failing), outcome)
    return outcome


def _item_label(r: CheckResult) -> str:
    # A quality rule's title already starts with its id (its target): name it once.
    parts = [r.title, r.host or ""] + ([] if not r.target or r.target in r.title else [r.target])
    return " ".join(p for p in parts if p)


def summary_line(outcome: RunOutcome, failing: Callable[[Status], bool] = run_failed,
                 limit: int = SUMMARY_ITEMS) -> str:
    """One line: the verdict, each problem item once (worst first, with a count when it repeats),
    "and N more" past `limit`, and where the evidence is."""
    items: dict[str, list] = {}  # label -> [worst status, count]
    for r in outcome.results:
        if failing(r.status):
            seen = items.setdefault(_item_label(r), [r.status, 0])
            seen[0] = max(seen[0], r.status, key=lambda s: s.rank)
            seen[1] += 1
    ranked = sorted(items.items(), key=lambda kv: -kv[1][0].rank)  # stable: catalogue order within a status
    named = [f"{label}: {st.value}" + (f" ×{n}" if n > 1 else "") for label, (st, n) in ranked[:limit]]
    if len(ranked) > limit:
        named.append(f"and {len(ranked) - limit} more")
    head = f"{outcome.duty} {outcome.site}: verdict {outcome.verdict.value}"
    return f"{head} — {'; '.join(named)} (evidence {outcome.bundle.prefix})" if named else \
        f"{head} (evidence {outcome.bundle.prefix})"

