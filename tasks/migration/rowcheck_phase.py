"""The row check (tasks/migration/rowcheck.py) inside phase 6, verify: both sides open at once,
every table merged by primary key, and its figures and keys in the 迁移记录 — one record 逐行比对
(tables, rows, seconds, rows/s), one more per table that differs or could not be compared, and the
kept keys of every table in `migration_rowcheck.json`.
"""
from __future__ import annotations

import json
from dataclasses import asdict

from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun
from tasks.migration.rowcheck import Side, TableRows, compare_schema

TITLE = "逐行比对"
NAMED = 10  # keys named in a reason; the kept ones (verify_rows_keep_keys) are in raw and the json file
KIND_ZH = {"missing": "目标库缺失", "extra": "目标库多出", "differing": "内容不同"}


def table_reason(t: TableRows) -> str:
    """`t_ebill_detail：源库 n 行、目标库 m 行；目标库缺失 1 行（主键 …）；…`"""
    parts = [f"{t.table}：源库 {t.source_rows} 行、目标库 {t.target_rows} 行"]
    for kind, zh in KIND_ZH.items():
        n = getattr(t, kind)
        if n:
            keys = t.keys[kind][:NAMED]
            more = f" 等 {n} 个" if n > len(keys) else ""
            parts.append(f"{zh} {n} 行（主键 {'、'.join(keys)}{more}）")
    return "；".join(parts)


def summary_reason(tables: list[TableRows], seconds: float, rate: float) -> str:
    compared = [t for t in tables if not t.not_compared and not t.error]
    rows = sum(t.source_rows for t in compared)
    diffs = sum(t.differences for t in compared)
    text = (f"{len(compared)} 张表共 {rows} 行（源库）按主键逐行比对，每行取规范文本的 SHA-256（两种引擎同一算法），"
            f"用时 {seconds:.1f} 秒，{rate:.0f} 行/秒；" + (f"{diffs} 行不一致" if diffs else "逐行一致"))
    left = [f"{t.table}（{t.not_compared}）" for t in tables if t.not_compared]
    bad = [t.table for t in tables if t.error]
    if left:
        text += "；未逐行比对：" + "、".join(left)
    if bad:
        text += "；无法比对：" + "、".join(bad)
    return text


def run(m: Migration, ph: PhaseRun, counts: dict[str, int]) -> None:
    """The row check of the phase, or one OK record saying the site turned it off."""
    cfg = m.cfg
    if not cfg.verify_rows:
        ph.check(TITLE, Status.OK, "站点设置 verify_rows: false：未逐行比对（对象清单、行数与库内内容指纹已比较全部表）")
        return
    started = utcnow()
    try:
        with db.side_reading(cfg, cfg.source) as (s_fetch, s_stream), \
                db.side_reading(cfg, cfg.target) as (t_fetch, t_stream):
            tables = compare_schema(Side(cfg.source.engine, cfg.source.schema, s_fetch, s_stream),
                                    Side(cfg.target.engine, cfg.target.schema, t_fetch, t_stream),
                                    keep=cfg.verify_rows_keep_keys, batch=cfg.verify_rows_batch,
                                    max_rows=cfg.verify_rows_max_table_rows, counts=counts)
    except Exception as exc:  # noqa: BLE001 - a side that cannot be opened is this check's ERROR
        ph.check(TITLE, Status.ERROR, f"{type(exc).__name__}: {exc}", started_at=started, code=Code.ROWS_INCOMPARABLE)
        return
    record(m, ph, tables, started)


def record(m: Migration, ph: PhaseRun, tables: list[TableRows], started) -> None:
    host = m.cfg.target.db_host
    seconds = (utcnow() - started).total_seconds()
    read = sum(t.rows_read for t in tables if not t.not_compared)
    rate = read / seconds if seconds > 0 else 0.0
    for t in tables:
        raw = json.dumps(t.keys, ensure_ascii=False)
        if t.error:
            ph.check(f"{TITLE}：{t.table}", Status.FAIL, f"{t.table}：{t.error}", target=t.table, host=host,
                     started_at=started, code=Code.ROWS_INCOMPARABLE)
        elif t.differences:
            ph.check(f"{TITLE}：{t.table}", Status.FAIL, table_reason(t), target=t.table, host=host, value=t.differences,
                     unit="行不一致", threshold="0", raw=raw, started_at=started, code=Code.ROWS_DIFFER)
    bad = any(t.error or t.differences for t in tables)
    diffs = sum(t.differences for t in tables)
    # Across engines a table left out is covered by its row count alone (the in-database fingerprints
    # are not comparable): a changed value there would pass unseen, so the record says WARN, not OK.
    counted = [t.table for t in tables if t.count_only]
    status = Status.FAIL if bad else Status.WARN if counted else Status.OK
    reason = summary_reason(tables, seconds, rate)
    if counted and not bad:
        reason += (f"；跨引擎迁移中 {'、'.join(counted)} 只比较了行数，内容未经逐行证明"
                   f"（可调大 verify_rows_max_table_rows 或在停机窗口外补做逐行比对）")
    ph.check(TITLE, status, reason, value=diffs, unit="行不一致", threshold="0", host=host, started_at=started,
             code=Code.ROWS_DIFFER if diffs else Code.ROWS_INCOMPARABLE if bad else Code.ROWS_COUNT_ONLY if counted else "")
    ph.facts.update(rows_compared=sum(t.source_rows for t in tables if not t.not_compared and not t.error),
                    rowcheck_seconds=round(seconds, 1), rowcheck_rows_per_s=round(rate),
                    rows_differing=diffs)
    ph.note("source+target", f"row check {m.cfg.schema_name}: every table by primary key, batch {m.cfg.verify_rows_batch}",
            f"{len(tables)} tables, {read} rows read on both sides, {rate:.0f} rows/s, {diffs} differing", 0, seconds)
    m.files["migration_rowcheck.json"] = json.dumps([asdict(t) for t in tables], ensure_ascii=False)
