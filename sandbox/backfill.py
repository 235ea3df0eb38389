"""Backfill a sandbox site's evidence with real runs at past dates, so a service report has history.

    python -m sandbox.backfill SITE --from 2026-11-01 --to 2026-12-01 [--skip invoice_quality:2026-11-23]
                                    [--watch-from 2026-12-01]

Runs the real flows (inspection, invoice quality, pre-holiday check) against the sandbox in the
order the deployments would have run them (deployments/schedules.py), each under a clock set back
to its scheduled time (tasks/core/clock.py): the records and bundles carry the past date, the
servers are read as they are now, and every manifest says `extra.backdated` so no bundle passes
for a run that really happened then. `--skip DUTY:DATE` leaves a scheduled run out, to show a
missing duty in the report. Use a site id of your own (a copy of demo.yaml with another `site:`)
on a shared sandbox, so the chains do not mix with other people's.

The pre-holiday check runs with `fresh_backup=skip` (a backfill must not take backups on a shared
sandbox) and the quarterly backup-restore verification is not backfilled (it restores a database:
run `ebops verify-backup` for real); the report shows it as due and missing, as it is.

`--watch-from DATE` adds the interface watch (接口运维) from DATE to --to: every cycle at the site's
interval (288 a day at 5 minutes), each a real watch flow run under the clock set to its time, and
the first cycle of the day after --to, which seals the last day; each earlier day is sealed by the
first cycle of the next, as in production. That is what gives the report availability from the
watch; a cycle costs about 1.4 s on the 2-core machine (README, "Service reports"), so a day or two.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from config.settings import load_site
from tasks.core import clock
from tasks.report.due import DueRun, due_runs


@dataclass(frozen=True)
class Ran:
    due: DueRun
    verdict: str
    prefix: str


def _run(site: str, due: DueRun) -> Ran:
    from flows.common import VerdictFailed

    if due.duty == "inspection":
        from flows.inspection import inspection
        state = inspection(site=site, kind=due.kind, return_state=True)
    elif due.duty == "invoice_quality":
        from flows.invoice_quality import QualityParams, invoice_quality
        state = invoice_quality(params=QualityParams(site=site, start=due.covers), return_state=True)
    elif due.duty == "holiday_precheck":
        from flows.holiday_precheck import PrecheckParams, holiday_precheck
        state = holiday_precheck(params=PrecheckParams(site=site, holiday_first_day=due.covers, fresh_backup="skip"),
                                 return_state=True)
    else:
        raise ValueError(f"{due.duty}: not backfilled")
    result = state.result(raise_on_failure=False)
    outcome = result.outcome if isinstance(result, VerdictFailed) else result
    if outcome is None or isinstance(outcome, BaseException):
        raise RuntimeError(f"{due.duty} at {due.due_at}: the run did not finish: {outcome!r}")
    return Ran(due, outcome.verdict.value, outcome.bundle.prefix)


BACKFILLED = ("inspection", "invoice_quality", "holiday_precheck")


def backfill(site: str, first: date, last: date, skip: set[tuple[str, date]] = frozenset(),
             duties: tuple[str, ...] = BACKFILLED, echo=print) -> list[Ran]:
    """Every run of `duties` scheduled from `first` to `last` (local dates), oldest first, each at
    its scheduled time; `skip` leaves (duty, local date) out."""
    cfg = load_site(site)
    tz = ZoneInfo(cfg.timezone)
    start = datetime.combine(first, datetime.min.time(), tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    done = []
    for due in due_runs(start, end, cfg.precheck_workdays_before):
        if due.duty not in duties or (due.duty, due.due_at.date()) in skip:
            continue
        with clock.backdated(due.due_at):
            ran = _run(site, due)
        echo(f"{due.due_at:%Y-%m-%d %H:%M} {due.duty:<17} {ran.verdict:<7} {ran.prefix}")
        done.append(ran)
    return done


@dataclass(frozen=True)
class Watched:
    cycles: int
    failed: int        # runs that ended Failed (a FAIL or ERROR that cycle): the outages of the history
    sealed_days: list[str]


def backfill_watch(site: str, first: date, last: date, echo=print) -> Watched:
    """The watch's cycles from `first` 00:00 to `last`'s end at the site's interval, each a real
    watch flow run at its time, and the first cycle of the next day, which seals `last`."""
    from flows.watch import watch
    from tasks.watch.seal import day_prefix
    from tasks.evidence.store import open_store

    cfg = load_site(site)
    tz = ZoneInfo(cfg.timezone)
    at, end = datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)
    cycles = failed = 0
    while at <= end:
        with clock.backdated(at):
            failed += watch(site=site, return_state=True).is_failed()
        cycles += 1
        if at.time() == time(0) and at > datetime.combine(first, time(0), tz):
            echo(f"{at:%Y-%m-%d %H:%M} watch             {cycles} cycles so far, {failed} Failed")
        at += timedelta(minutes=cfg.watch.interval_minutes)
    store = open_store(cfg.evidence)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    sealed = [d for d in days if store.exists(day_prefix(cfg, d) + "manifest.json")]
    return Watched(cycles, failed, sealed)


def _skip(text: str) -> tuple[str, date]:
    duty, _, day = text.partition(":")
    return duty, date.fromisoformat(day)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.backfill", description=__doc__.split("\n\n")[0])
    p.add_argument("site")
    p.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    p.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    p.add_argument("--skip", action="append", default=[], type=_skip, help="DUTY:YYYY-MM-DD (repeatable)")
    p.add_argument("--duties", default=",".join(BACKFILLED))
    p.add_argument("--watch-from", type=date.fromisoformat, help="also the watch's cycles from this date to --to")
    a = p.parse_args(argv)
    runs = backfill(a.site, a.first, a.last, set(a.skip), tuple(a.duties.split(","))) if a.duties else []
    print(f"{len(runs)} runs backfilled for {a.site}")
    if a.watch_from:
        w = backfill_watch(a.site, a.watch_from, a.last)
        print(f"{w.cycles} watch cycles for {a.site} ({w.failed} Failed); days sealed: {', '.join(w.sealed_days) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
