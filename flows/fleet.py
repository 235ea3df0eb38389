"""多院区巡检 (fleet inspection): the inspection catalogue of many hospitals in one run.

Each hospital is inspected by the same code as a single-site run (flows.inspection.inspect_site):
the same catalogue, evidence bundle, log positions and alerts. Each hospital is one task run,
`inspect_site_in_fleet`, whose checks run concurrently as plain functions (PlainChecks), at most
`max_sites` hospitals at a time. Not a subflow with a task run per check: twenty hospitals'
~300 runs made the local Prefect API (SQLite) answer 503, and ten of twenty hospitals ended in
ERROR in the bench; the per-check detail is in each hospital's evidence and artifact.

The site tasks go to a ThreadPoolTaskRunner sized by `max_sites` that the fleet flow opens itself
(a flow's own runner is fixed when it is decorated, and max_sites is a parameter).

A site whose file is bad, or whose run crashes, gives an ERROR line in the summary; the others go
on. The fleet run ends Failed if any site's verdict is FAIL or ERROR, but only once every site has
finished and stored its evidence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from config.problems import SiteConfigError
from config.settings import load_site, sites_dir
from flows.common import RunOutcome
from flows.inspection import inspect_site
from tasks.core.masking import mask_text
from tasks.core.results import Status, run_failed, utcnow

# Site files that are templates to copy, not hospitals (config/sites/example-oracle.yaml).
TEMPLATE_PREFIX = "example"


class FleetFailed(RuntimeError):
    """Raised at the very end of a fleet run, after every site's evidence is stored; carries the
    summary so a caller (CLI, bench) can still print it."""

    def __init__(self, message: str, summary: list[dict]):
        super().__init__(message)
        self.summary = summary


def fleet_site_names() -> list[str]:
    """Every site file in the sites folder, templates aside. A file that does not load is kept:
    it gets an ERROR line, because a hospital silently left out of the fleet is never inspected."""
    return [p.stem for p in sorted(sites_dir().glob("*.yaml")) if not p.stem.startswith(TEMPLATE_PREFIX)]


def _entry(site: str, verdict: Status, *, name: str = "", reason: str = "", outcome: RunOutcome | None = None,
           started_at=None, finished_at=None) -> dict:
    bundle = outcome.bundle if outcome else None
    return {
        "site": site, "name": name, "verdict": verdict.value, "verdict_zh": verdict.label_zh,
        "findings": sum(1 for r in outcome.results if r.status != Status.OK) if outcome else 0,
        "evidence_prefix": bundle.prefix if bundle else None,
        "location": bundle.location if bundle else None,
        "report_url": bundle.report_url if bundle else None,
        "reason": mask_text(reason)[:500],
        "started_at": started_at.isoformat() if started_at else None,
        "finished_at": finished_at.isoformat() if finished_at else None,
        "elapsed_s": round((finished_at - started_at).total_seconds(), 2) if started_at and finished_at else None,
    }


def _worst_items(outcome: RunOutcome, n: int = 3) -> str:
    bad = sorted((r for r in outcome.results if run_failed(r.status)), key=lambda r: -r.status.rank)
    return "；".join(f"{r.title} {r.host or ''} {r.target}".strip() + f"：{r.status.label_zh}" for r in bad[:n])


@task(name="inspect_site_in_fleet", task_run_name="巡检-{site}", cache_policy=NONE, retries=0)
def inspect_site_in_fleet(site: str, kind: str = "adhoc", engineer: str = "", name: str = "") -> dict:
    """One hospital's inspection; always returns its summary line, never raises, so one
    hospital's trouble cannot stop the others."""
    logger = get_run_logger()
    started = utcnow()
    try:
        got = inspect_site(load_site(site), kind, engineer, plain=True)
    except Exception as exc:  # noqa: BLE001 - a crash of one hospital's run is that hospital's ERROR
        why = mask_text(f"{type(exc).__name__}: {exc}")[:300]
        logger.error("site %s: the inspection run crashed: %s", site, why)
        return _entry(site, Status.ERROR, name=name, reason=f"巡检运行出错（{why}）", started_at=started, finished_at=utcnow())
    reason = _worst_items(got) if run_failed(got.verdict) else ""
    return _entry(site, got.verdict, name=name, outcome=got, reason=reason, started_at=started, finished_at=utcnow())


def summary_markdown(table: list[dict], kind: str) -> str:
    counts = {}
    for e in table:
        counts[e["verdict_zh"]] = counts.get(e["verdict_zh"], 0) + 1
    lines = [f"## 多院区巡检（{kind}）：{len(table)} 家医院",
             "", "，".join(f"{k} {v} 家" for k, v in counts.items()) or "没有站点", "",
             "| 站点 | 医院 | 结论 | 异常项 | 证据包 | 说明 |", "|---|---|---|---|---|---|"]
    for e in table:
        prefix = e["evidence_prefix"] or "—"
        if e["report_url"]:
            prefix = f"[{prefix}]({e['report_url']})"
        elif e["location"] == "outbox":
            prefix += "（暂存 outbox）"
        reason = (e["reason"] or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {e['site']} | {e['name']} | **{e['verdict_zh']}** {e['verdict']} | {e['findings']} | {prefix} | {reason} |")
    return "\n".join(lines)


@flow(name="fleet-inspection", log_prints=True)
def fleet_inspection(sites: list[str] | None = None, kind: Literal["monthly", "quarterly", "adhoc"] = "adhoc",
                     max_sites: int = 8, engineer: str = "") -> list[dict]:
    """多院区巡检: inspect every named hospital (all site files when none is named), at most
    `max_sites` at a time; return one summary line per hospital, in the order given."""
    logger = get_run_logger()
    names = list(sites) if sites else fleet_site_names()
    entries: dict[str, dict] = {}
    runnable: dict[str, str] = {}
    owners: dict[str, str] = {}  # site id -> the file that claimed it
    for n in names:
        if n in entries or n in runnable:
            continue  # the same file named twice is inspected once
        label = Path(n).stem
        try:
            cfg = load_site(n)
        except SiteConfigError as exc:
            entries[n] = _entry(label, Status.ERROR, reason=f"站点文件无效：{exc}")
            continue
        if cfg.site in owners:
            # Two files with one site id would interleave one evidence chain.
            entries[n] = _entry(label, Status.ERROR, name=cfg.name,
                                reason=f"站点编号 {cfg.site} 与 {owners[cfg.site]} 重复，未巡检")
            continue
        owners[cfg.site] = n
        runnable[n] = cfg.name

    if runnable:
        workers = max(1, min(max_sites, len(runnable)))
        logger.info("inspecting %d sites, %d at a time", len(runnable), workers)
        with ThreadPoolTaskRunner(max_workers=workers) as runner:
            futures = {n: runner.submit(inspect_site_in_fleet, {"site": n, "kind": kind, "engineer": engineer,
                                                                 "name": hospital})
                       for n, hospital in runnable.items()}
            for n, fut in futures.items():
                fut.wait()
                state = fut.state
                entries[n] = (state.result() if state.is_completed() else
                              _entry(Path(n).stem, Status.ERROR, name=runnable[n],
                                     reason=f"巡检任务未完成（{state.type.value}: {state.message or ''}）"))
    table = [entries[n] for n in dict.fromkeys(names)]

    create_markdown_artifact(key="fleet-inspection", markdown=summary_markdown(table, kind),
                             description=f"fleet inspection of {len(table)} sites")
    for e in table:
        logger.info("%s %s: %s %s", e["site"], e["name"], e["verdict"], e["evidence_prefix"] or e["reason"])
    bad = [e for e in table if run_failed(Status(e["verdict"]))]
    if bad:
        raise FleetFailed("fleet verdict: " + "; ".join(f"{e['site']} {e['verdict']}" for e in bad), table)
    return table
