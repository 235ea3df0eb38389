"""Running the data-quality suites with Great Expectations over one database and one period.

GX reads through the same read-only session as every other check (EbillDatabase.engine_session is
the SQLAlchemy engine's `creator`), so the password never appears in a connection URL or a GX config.
Each suite is one validation definition of one checkpoint; the checkpoint's UpdateDataDocsAction
renders Data Docs into a local folder that becomes part of the evidence bundle.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from tasks.connect.database.base import EbillDatabase, QueryDeadlineExceeded
from tasks.core.masking import mask_text
from tasks.quality import shared_scan
from tasks.quality.suites import RuleCheck, load_suites, render, rule_checks
from tasks.quality.timeouts import deadline_reason

# Rows judged by each scope (the denominators of the report), over the same period as the rules.
SCOPE_SQL = {
    "invoice": "SELECT COUNT(*) AS n FROM ${canon}.ebill_invoice i WHERE i.issue_time >= ${start} AND i.issue_time < ${end}",
    "blue": "SELECT COUNT(*) AS n FROM ${canon}.ebill_invoice i WHERE i.bill_kind = 'B' AND i.issue_time >= ${start} "
            "AND i.issue_time < ${end}",
    "red": "SELECT COUNT(*) AS n FROM ${canon}.ebill_invoice i WHERE i.bill_kind = 'R' AND i.issue_time >= ${start} "
           "AND i.issue_time < ${end}",
    "item": "SELECT COUNT(*) AS n FROM ${canon}.ebill_invoice_item d JOIN ${canon}.ebill_invoice i ON i.bill_id = d.bill_id "
            "WHERE i.issue_time >= ${start} AND i.issue_time < ${end}",
    "settlement": "SELECT COUNT(*) AS n FROM ${canon}.his_settlement s WHERE s.settle_time >= ${start} AND s.settle_time < ${end}",
    "stock": "SELECT COUNT(*) AS n FROM ${canon}.ebill_stock s",
    # segments the period's bills were issued from: what DQ21 judges for the period (the canonical
    # ebill_stock carries no change time, so a bill of the period is the only dated touch)
    "stock_period": "SELECT COUNT(*) AS n FROM ${canon}.ebill_stock s WHERE EXISTS (SELECT 1 FROM ${canon}.ebill_invoice i "
                    "WHERE i.bill_code = s.bill_code AND i.bill_no >= s.start_no AND i.bill_no <= s.end_no "
                    "AND i.issue_time >= ${start} AND i.issue_time < ${end})",
}
# Data Docs' static folder holds ~4 MB of fonts and illustrations per copy; a daily evidence
# bundle keeps the stylesheet and the pages, which read fine with the browser's own fonts.
_DOCS_DROP = ("static/fonts", "static/images")


@dataclass
class CheckOutcome:
    """What one expectation found: failing keys (all of them), or why it could not run."""
    check: RuleCheck
    failing: list[tuple] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    timed_out: bool = False  # the error is the session's deadline cutting the rule's query


@dataclass
class SuiteRun:
    outcomes: list[CheckOutcome]
    checked: dict[str, int]  # scope -> rows in the period
    seconds: float


def _quiet_gx() -> None:
    # GX prints "should contain {batch}" for every rule (they name their relations themselves:
    # rules span relations and look past the period's edges) and draws progress bars in logs.
    # (GX's config module pins its own logger to INFO, so that one is set by name.)
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        ctx.add_data_docs_site(site_name="evidence", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    return ctx


def run_suites(db: EbillDatabase, canon: str, start: date, end: date, now: datetime,
               docs_dir: Path | None = None, rules: list[str] | None = None) -> SuiteRun:
    """Validate [start, end) with every suite (or only the given rule ids); never raises for a rule
    that fails to run: its outcome carries the (masked) error instead."""
    import great_expectations as gx

    _quiet_gx()
    started = time.monotonic()
    # Every session of the run (the lanes' and the scope counts') may scan a whole period, up to the
    # site's quality deadline; a wait for another session's lock is still cut at its statement deadline.
    db.allow_long_queries(db.cfg.quality_statement_timeout_s)
    dialect = db.dialect
    suites = load_suites()
    checks = [c for c in rule_checks(suites) if rules is None or c.rule_id in rules]
    # bills of the period are always counted: a period without any is SKIPPED, whatever the rule
    scopes = sorted({c.scope for c in checks} | {"invoice"})
    names = [n for n in suites if any(c.suite == n for c in checks)]
    lanes = [lane for lane in _lanes(names) if lane]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # (GX warns that a generic SQL source and an asset's schema_name are not its preferred way;
        # they are deliberate: one code path for PostgreSQL and Oracle, the schema is the site's.)
        warnings.simplefilter("ignore")
        # Contexts are made here; each lane's checkpoint then runs on a thread of its own, with its
        # own GX context, engine and database sessions (GX objects are not shared across threads).
        prepared: list[_Lane] = []
        try:
            for lane in lanes:
                prepared.append(_prepare(gx, db, suites, lane, checks, dialect, canon, start, end, now))
            with ThreadPoolExecutor(max_workers=len(prepared) or 1, thread_name_prefix="gx-lane") as pool:
                running = [pool.submit(_run_lane, lane) for lane in prepared]
                # the rows each scope judges, counted on this thread's own session meanwhile
                checked = {s: int(db.query(render(SCOPE_SQL[s], dialect, canon, start, end, now))[0]["n"])
                           for s in scopes}
                ran = [f.result() for f in running]
        except Exception as exc:
            # GX's test query of a table (or a lane) cut by the deadline: the database checks' one line.
            reason = None if isinstance(exc, QueryDeadlineExceeded) else deadline_reason(db, exc)
            if reason is None:
                raise
            raise QueryDeadlineExceeded(reason) from exc
        finally:
            for lane in prepared:  # also when a later lane could not be prepared (a view missing)
                _close(lane.datasource, lane.opened)
        if docs_dir is not None:
            _data_docs(gx, docs_dir, prepared, ran)
    outcomes = []
    for lane, result in zip(prepared, ran):
        for vres in result.run_results.values():
            for check, er in zip(lane.by_suite[vres.suite_name], vres.results):
                outcomes.append(_outcome(check, er, db))
    return SuiteRun(outcomes, checked, round(time.monotonic() - started, 2))


# Relative cost of each suite on a quarter of 1 M bills (bench/quality_bench.py), to balance the lanes.
_SUITE_COST = {"ebill_invoice_header": 7.0, "ebill_invoice_items": 4.3, "ebill_red_bills": 3.8,
               "ebill_stock": 2.7, "ebill_reconciliation": 1.3}
LANES = 2  # suites validated at once, each lane on its own session: the database does the work


def _lanes(names: list[str]) -> list[list[str]]:
    """Suites dealt to LANES lanes, the costliest first to the least loaded lane."""
    lanes: list[list[str]] = [[] for _ in range(LANES)]
    load = [0.0] * LANES
    for name in sorted(names, key=lambda n: -_SUITE_COST.get(n, 1.0)):
        i = load.index(min(load))
        lanes[i].append(name)
        load[i] += _SUITE_COST.get(name, 1.0)
    return lanes


@dataclass
class _Lane:
    ctx: object
    datasource: object
    checkpoint: object
    suites: list
    by_suite: dict[str, list[RuleCheck]]
    opened: list


def _creator(db: EbillDatabase, opened: list):
    """The engine's way to open a session: the database's own read-only one (every transaction GX's
    pool opens is read-only, on Oracle too), remembered so that the run closes it."""
    def creator():
        conn = db.engine_session()
        opened.append(conn)
        return conn
    return creator


def _prepare(gx, db: EbillDatabase, suites: dict, lane: list[str], checks: list[RuleCheck], dialect: str,
             canon: str, start: date, end: date, now: datetime) -> _Lane:
    ctx = _context(None)
    opened: list = []
    ds = ctx.data_sources.add_sql(
        name="ebill", connection_string="oracle+oracledb://" if dialect == "oracle" else "postgresql+psycopg://",
        kwargs={"creator": _creator(db, opened)})
    try:
        return _fill_lane(gx, ctx, ds, opened, suites, lane, checks, dialect, canon, start, end, now)
    except BaseException:
        _close(ds, opened)  # GX tested each table's connection while adding it
        raise


def _fill_lane(gx, ctx, ds, opened: list, suites: dict, lane: list[str], checks: list[RuleCheck], dialect: str,
               canon: str, start: date, end: date, now: datetime) -> _Lane:
    # GX is imported only when a run needs it
    from tasks.quality.gx_single_pass import ExpectEbillRuleHolds, ExpectEbillRuleHoldsInScan

    validations, by_suite, made = [], {}, []
    for name in lane:
        mine = [c for c in checks if c.suite == name]
        data = suites[name]
        asset = ds.add_table_asset(name=name, table_name=data["meta"]["relation"], schema_name=canon)
        shared = shared_scan.plan(mine, dialect)
        exps = []
        for c in mine:
            kw = {"unexpected_rows_query": render(c.queries[dialect], dialect, canon, start, end, now),
                  "description": f"{c.rule_id} {c.title_zh}" + ("（长期问题：本期未使用的号段）" if c.standing else ""),
                  "meta": {"rule_id": c.rule_id, "check": c.check, "severity": c.severity, "key": list(c.key)}}
            if c.check in shared:
                scan = shared[c.check]
                exps.append(ExpectEbillRuleHoldsInScan(
                    scan_query=render(scan.query, dialect, canon, start, end, now), scan_flag=scan.flag, **kw))
            else:
                exps.append(ExpectEbillRuleHolds(**kw))
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=exps, meta=data["meta"]))
        made.append(suite)
        validations.append(ctx.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=asset.add_batch_definition_whole_table("whole"), suite=suite)))
        by_suite[name] = mine
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(
        name=f"invoice_quality_{start:%Y%m%d}_{'_'.join(lane)}", validation_definitions=validations,
        # COMPLETE is safe: every query selects business keys only, never a payer's data
        result_format={"result_format": "COMPLETE"}))
    return _Lane(ctx, ds, checkpoint, made, by_suite, opened)


def _run_lane(lane: _Lane):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lane.checkpoint.run()
    finally:
        _close(lane.datasource, lane.opened)


def _close(datasource, opened: list) -> None:
    """Every session GX opened, closed now, not when GX's objects are collected: the read-only
    account has a connection limit, and a scratch copy cannot be dropped while one is connected."""
    with contextlib.suppress(Exception):
        datasource.get_engine().dispose()
    for conn in opened:
        with contextlib.suppress(Exception):
            conn.close()


def _data_docs(gx, docs_dir: Path, lanes: list[_Lane], results: list) -> None:
    """One Data Docs site for the whole run: every lane's suites and validation results, rendered once."""
    ctx = _context(docs_dir)
    for lane, result in zip(lanes, results):
        for suite in lane.suites:
            ctx.suites.add(gx.ExpectationSuite(name=suite.name, expectations=[copy.copy(e) for e in suite.expectations],
                                               meta=suite.meta))
        for key, vres in result.run_results.items():
            ctx.validation_results_store.set(key, vres)
    ctx.build_data_docs(site_names=["evidence"])
    for sub in _DOCS_DROP:
        shutil.rmtree(Path(docs_dir) / sub, ignore_errors=True)


def _outcome(check: RuleCheck, er, db: EbillDatabase) -> CheckOutcome:
    """One expectation's result as failing keys (ExpectEbillRuleHolds returns every failing row)."""
    info = er.exception_info or {}
    raised = info.get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    if raised or er.result.get("observed_value") is None:
        msgs = [info.get("exception_message")] + [v.get("exception_message") for v in info.values() if isinstance(v, dict)]
        text = next((m for m in msgs if m), "GX returned no result")
        reason = deadline_reason(db, text)
        if reason is not None:
            return CheckOutcome(check, error=reason, timed_out=True)
        return CheckOutcome(check, error=mask_text(text)[:500])
    rows = (er.result.get("details") or {}).get("unexpected_rows") or []
    keys = sorted({tuple("" if r.get(k) is None else str(r.get(k)).strip() for k in check.key) for r in rows})
    return CheckOutcome(check, failing=keys)
