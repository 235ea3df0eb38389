"""接口运维 (interface watch, QH rows 7-12, MZ 一.11-18): every few minutes, the e-bill functions'
health calls, the interfaces' success rates of the last window and the bill-number stock.

A light flow: one cycle (tasks/watch/cycle.py) without task runs of its own, alerts only on a
change of state, the results appended to the day's journal and sealed into one evidence bundle
per site and day (the 日运行表) by the first run after midnight. The run ends Failed when this
cycle found a FAIL or ERROR (after its record is kept), so the Prefect UI shows the outage too.
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from config.settings import load_site
from flows.common import VerdictFailed, current_run_id, outbox_dir, state_dir
from flows.duty_slot import duty_slot
from tasks.core.results import Status, run_failed
from tasks.watch.cycle import CycleOutcome, run_cycle

# A cycle takes seconds; one still waiting for the previous after this long gives up, and the
# next one comes anyway (less than the 5-minute interval, so runs never pile up).
WATCH_SLOT_WAIT_S = 240


def watch_state_dir(cfg):
    return state_dir(cfg) / "watch"


def one_line(cfg, out: CycleOutcome) -> str:
    bad = [i for i in out.record["items"] if i["status"] != Status.OK.value]
    named = "；".join(f"{i['title']} {i['target']}: {i['status']}" for i in bad[:8])
    more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
    return f"watch {cfg.site}: {out.record['verdict']}" + (f" — {named}{more}" if bad else "")


@flow(name="watch", log_prints=True, persist_result=False)
def watch(site: str = "demo") -> dict:
    """接口运维: one probe cycle of one site (functions, interfaces, stock); seals yesterday's 日运行表."""
    cfg = load_site(site)
    logger = get_run_logger()
    with duty_slot(cfg.site, "watch", wait_s=WATCH_SLOT_WAIT_S):
        out = run_cycle(cfg, watch_state_dir(cfg), outbox_dir(cfg), current_run_id())
    for s in out.sealed:
        logger.info("日运行表 %s sealed: %s (%s, %d probes, %s)", s.day, s.bundle.prefix, s.verdict, s.probes,
                    s.bundle.location)
    for c in out.record["changes"]:
        logger.warning("state change %s: %s -> %s", c["key"], c["from"], c["to"])
    for d in out.record["deliveries"]:
        if d["status"] != "sent":
            logger.warning("alert not delivered to %s: %s", d["target"], d["error"])
    line = one_line(cfg, out)
    summary = {"site": cfg.site, "verdict": out.record["verdict"], "probe": out.record["id"],
               "changes": out.record["changes"], "sealed": [s.bundle.prefix for s in out.sealed],
               "cost": out.record["cost"], "store_error": out.store_error}
    if run_failed(out.verdict):
        raise VerdictFailed(line)
    logger.info(line)
    return summary
