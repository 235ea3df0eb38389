"""Phase 6, verify: the frozen source against the restored target, every table — object inventory,
row counts, in-database content fingerprints (tasks/backup/verify: the same measuring as the
backup verification), 20 bills field by field, every row by primary key (逐行比对,
tasks/migration/rowcheck.py; site setting verify_rows), and the data-quality suites (DQ01-DQ22) on the
target. The application is stopped, so nothing is cut off and no column is left out: full equality.
Across engines (Oracle -> PostgreSQL family) the comparison is tasks/migration/verify_cross.py's.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from config.migration import MigrationSide
from config.hosts import DatabaseConfig
from tasks.backup.verify import measure
from tasks.backup.verify.fingerprint_compare import compare_fingerprints, compare_inventories, compare_row_counts
from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import after_restore, db, oracle, rowcheck_phase, verify_cross
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

CANON = "ebill_canon"


def canon_schema(m: Migration, side: MigrationSide | None = None) -> str:
    """Where the canonical views are on each side: PostgreSQL's dump carries its schema ebill_canon;
    on Oracle they are the site's database.schema (default EBOPS), which RMAN DUPLICATE copies with
    the whole database and a Data Pump migration exports with the vendor's schema (oracle._schemas)."""
    if (side or m.cfg.target).engine != "oracle":   # across engines the two sides differ
        return CANON
    return oracle.canonical_schema(m.site) or "EBOPS"


def compare(m: Migration, ph: PhaseRun) -> None:
    if m.cfg.across_engines:
        counts = verify_cross.compare(m, ph)
        if counts is not None:
            rowcheck_phase.run(m, ph, counts)
        return
    cfg, d = m.cfg, m.cfg.source.engine   # one engine: both sides in its dialect
    started = utcnow()
    try:
        with db.side_session(cfg, cfg.source) as fetch:
            src = measure.measure(fetch, d, cfg.source.schema, as_of=None, chunk_rows=cfg.chunk_rows)
            src_bills = measure.sample_bills(fetch, d, cfg.source.schema, cfg.sample_bills, None)
        with db.side_session(cfg, cfg.target) as fetch:
            tgt = measure.measure(fetch, d, cfg.target.schema, as_of=None, chunk_rows=cfg.chunk_rows,
                                  key_shifts=src.key_shifts(), methods=src.methods())
            keys = [{"id": k[0], measure.BILL_TIME: k[1]} for k in src_bills]
            tgt_bills = measure.sample_bills(fetch, d, cfg.target.schema, 0, None, keys=keys)
    except Exception as exc:  # noqa: BLE001
        ph.check("比对", Status.ERROR, f"{type(exc).__name__}: {exc}", started_at=started)
        return
    ph.note("source+target", f"measure {cfg.schema_name}: inventory, counts, fingerprints (chunk_rows {cfg.chunk_rows})",
            f"source {src.seconds:.1f} s, target {tgt.seconds:.1f} s, {len(src.counts)} tables, "
            f"{sum(src.counts.values())} rows", 0, src.seconds + tgt.seconds)
    host = cfg.target.db_host
    out = compare_inventories(m.site.site, src.inventory, tgt.inventory, schema=cfg.schema_name, host=host, started_at=started)
    out += compare_row_counts(m.site.site, src.counts, tgt.counts, as_of=None, host=host, started_at=started)
    out += compare_fingerprints(m.site.site, src.prints, tgt.prints, as_of=None, host=host, started_at=started)
    for r in out:
        r.check, r.title = "migration_verify", f"6. 数据校验：{r.title}"
    ph.results += out
    bad = {}
    for key, row in src_bills.items():
        diff = measure.compare_bill(row, tgt_bills.get(key))
        if diff:
            bad[measure.masked_bill_label(row or {})] = diff
    named = "；".join(f"{k}：{'、'.join(v)}" for k, v in list(bad.items())[:10])
    ph.check("票据抽样逐字段比对", Status.OK if not bad and src_bills else Status.FAIL,
             (f"抽取 {len(src_bills)} 张票据（按主键均匀分布），所有字段两边一致" if src_bills else "源库没有票据可抽样")
             if not bad else f"{len(bad)}/{len(src_bills)} 张票据不一致：{named}", value=len(bad), unit="张不一致",
             threshold="0", host=host, code="" if not bad and src_bills else Code.SAMPLE_MISMATCH)
    ph.facts.update(tables=len(src.counts), rows=sum(src.counts.values()), verify_seconds=round(src.seconds + tgt.seconds, 1),
                    newest_bill=str(src.newest_bill))
    m.files["migration_source_fingerprints.json"] = json.dumps(src.to_json(), ensure_ascii=False, default=str)
    m.files["migration_target_fingerprints.json"] = json.dumps(tgt.to_json(), ensure_ascii=False, default=str)
    rowcheck_phase.run(m, ph, src.counts)


def run_quality(m: Migration, side: MigrationSide) -> tuple[list, float, tuple]:
    """DQ01-DQ22 on one side's canonical views, the last 7 days as of now (site time):
    (summaries, seconds, (start, end)). The plan times it on the source for the estimate."""
    from tasks.connect.database import connect
    from tasks.quality.gx_run import run_suites
    from tasks.quality.records import summarise

    db_cfg, canon = side.database, canon_schema(m, side)
    cfg = DatabaseConfig(dialect=side.engine, dsn=db_cfg.dsn, user=db_cfg.user, password=db_cfg.password,
                         schema=canon, connect_timeout_s=min(db_cfg.connect_timeout_s, 300))
    now = utcnow().astimezone(ZoneInfo(m.site.timezone)).replace(tzinfo=None)
    start, end = (now - timedelta(days=7)).date(), now.date()
    began = time.monotonic()
    conn = connect(cfg)
    try:
        summaries = summarise(run_suites(conn, canon, start, end, now))
    finally:
        conn.close()
    return summaries, time.monotonic() - began, (start, end)


def quality_on_target(m: Migration, ph: PhaseRun) -> None:
    """DQ01-DQ22 on the target's canonical views (last 7 days): every rule must run there; what
    the rules find is recorded, not judged (the data is the source's, defects included)."""
    if not m.cfg.quality_suites:
        ph.check("目标库数据质量规则", Status.OK, "站点配置不在迁移校验中运行数据质量规则（quality_suites: false）")
        return
    started = utcnow()
    try:
        summaries, seconds, (start, end) = run_quality(m, m.cfg.target)
    except Exception as exc:  # noqa: BLE001
        ph.check("目标库数据质量规则", Status.ERROR, f"{type(exc).__name__}: {exc}", started_at=started)
        return
    ph.facts["quality_seconds"] = round(seconds, 1)
    broken = [f"{s.rule_id}（{'；'.join(s.errors)}）" for s in summaries if s.errors]
    found = "；".join(f"{s.rule_id} {len(s.failing)} 条" for s in summaries if s.failing) or "无"
    ph.check("目标库数据质量规则", Status.OK if not broken else Status.FAIL,
             f"{len(summaries)} 条规则均可在目标库执行（{start} 至 {end}，用时 {seconds:.0f} 秒）；发现的数据问题：{found}"
             f"（源库原有，迁移不改变数据）" if not broken else f"目标库上有规则无法执行：{'，'.join(broken)}"
             + (f"（Oracle：规范视图在模式 {canon_schema(m)}，由 DBA 在目标库运行 config/sql/oracle/01_canonical_views.sql）"
                if m.cfg.target.engine == "oracle" else ""),
             value=len(broken), unit="条规则无法执行", threshold="0", started_at=started,
             code="" if not broken else Code.QUALITY_RULES_BROKEN)


def run(m: Migration, ph: PhaseRun) -> None:
    after_restore.run(m, ph)  # Oracle: open mode and invalid objects first (why there: after_restore.py)
    compare(m, ph)
    quality_on_target(m, ph)
