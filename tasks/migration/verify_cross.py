"""Phase 6, verify, across engines (信创: an Oracle source, a PostgreSQL-family target such as
openGauss or KingbaseES): each side read in its own dialect and its own spelling of the schema.

What is compared, and how:
- the inventory by table name, case-folded (Oracle's catalog spells EBILL.T_EBILL_MAIN, PostgreSQL's
  ebill.t_ebill_main; index and constraint names are each tool's own, so they are not compared);
- the row count of every table, by the same case-folded name;
- the sampled bills field by field, through the canonical text of tasks/migration/canonical.py
  (Decimal('12.5') = 12.50, Oracle NULL = PostgreSQL '', CHAR padding is not data);
- every row by primary key (逐行比对, tasks/migration/rowcheck_phase.py): the proof that not one bill
  changed, computed in Python the same way for both engines.
The in-database content fingerprints (tasks/backup/verify/fingerprint.py) are built by each engine
from its own row text: across engines they cannot agree, so they are not compared, and a record
says so and why (never silently).
"""
from __future__ import annotations

import time
from typing import Any

from config.migration import MigrationSide
from tasks.backup.verify import catalog as cat
from tasks.backup.verify import measure
from tasks.backup.verify.fingerprint_compare import compare_inventories, compare_row_counts
from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db
from tasks.migration.canonical import blank_padded, canonical
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun


class SideTables:
    """One side's tables as the cross-engine comparison needs them, names case-folded."""

    def __init__(self, fetch: measure.Fetch, side: MigrationSide):
        began = time.monotonic()
        self.dialect, self.schema = side.engine, measure.catalog_name(side.engine, side.schema)
        self.shapes = cat.shapes_from_rows(fetch(cat.columns_statement(self.dialect, self.schema)))
        counted = (cat.row_counts_from_rows(fetch(cat.row_counts_statement(self.dialect, self.schema, self.shapes)))
                   if self.shapes else {})
        self.counts = {t.lower(): n for t, n in counted.items()}
        self.padded = {c.name.lower() for s in self.shapes.values() for c in s.columns if blank_padded(c.data_type)}
        self.seconds = time.monotonic() - began

    def inventory(self) -> frozenset[cat.DbObject]:
        return frozenset(cat.DbObject("table", t.lower(), t.lower()) for t in self.shapes)


def bill_fields_differ(source: dict | None, target: dict | None, padded: set[str]) -> list[str]:
    """The names of the fields whose canonical texts differ ('整行缺失' when one side lacks the
    bill); column names case-folded. Values are not returned (personal data)."""
    if source is None or target is None:
        return ["整行缺失"]
    s = {k.lower(): v for k, v in source.items()}
    t = {k.lower(): v for k, v in target.items()}
    return [k for k in sorted(set(s) | set(t))
            if k not in s or k not in t or canonical(s[k], k in padded) != canonical(t[k], k in padded)]


def _label(row: dict[str, Any]) -> str:
    return measure.masked_bill_label({k.lower(): v for k, v in row.items()})


def compare(m: Migration, ph: PhaseRun) -> dict[str, int] | None:
    """Inventory, counts, fingerprints' record and the sampled bills; returns the source's counts
    (for the row check's size limit), None when a side could not be read (the ERROR record)."""
    cfg, src, tgt = m.cfg, m.cfg.source, m.cfg.target
    started = utcnow()
    try:
        with db.side_session(cfg, src) as fetch:
            s = SideTables(fetch, src)
            src_bills = measure.sample_bills(fetch, s.dialect, s.schema, cfg.sample_bills, None)
        with db.side_session(cfg, tgt) as fetch:
            t = SideTables(fetch, tgt)
            keys = [{"id": k[0], measure.BILL_TIME: k[1]} for k in src_bills]
            tgt_bills = measure.sample_bills(fetch, t.dialect, t.schema, 0, None, keys=keys)
    except Exception as exc:  # noqa: BLE001
        ph.check("比对", Status.ERROR, f"{type(exc).__name__}: {exc}", started_at=started)
        return None
    ph.note("source+target", f"catalogue and counts {s.dialect} {s.schema} -> {t.dialect} {t.schema} (across engines)",
            f"source {s.seconds:.1f} s, target {t.seconds:.1f} s, {len(s.shapes)} tables, {sum(s.counts.values())} rows",
            0, s.seconds + t.seconds)
    host = tgt.db_host
    out = compare_inventories(m.site.site, s.inventory(), t.inventory(), schema=f"{s.schema} -> {t.schema}", host=host,
                              started_at=started)
    out += compare_row_counts(m.site.site, s.counts, t.counts, as_of=None, host=host, started_at=started)
    for r in out:
        r.check, r.title = "migration_verify", f"6. 数据校验：{r.title}"
        if r.title.endswith("对象清单一致"):
            r.reason += "（跨引擎：按表名比较，不区分大小写；索引与约束名由各工具命名，不比较）"
    ph.results += out
    ph.check("库内内容指纹", Status.OK,
             f"跨引擎迁移（源库 {s.dialect}，目标库 {t.dialect}）：库内内容指纹由各引擎按自身的行文本在库内计算，两种引擎的"
             "结果不可比，本次未比较；每一行的内容由逐行比对证明（规范文本 SHA-256，两种引擎同一算法，在工作站上计算）",
             host=host)
    bad = {}
    for key, row in src_bills.items():
        diff = bill_fields_differ(row, tgt_bills.get(key), s.padded | t.padded)
        if diff:
            bad[_label(row or {})] = diff
    named = "；".join(f"{k}：{'、'.join(v)}" for k, v in list(bad.items())[:10])
    ph.check("票据抽样逐字段比对", Status.OK if not bad and src_bills else Status.FAIL,
             (f"抽取 {len(src_bills)} 张票据（按主键均匀分布），所有字段的规范文本两边一致（跨引擎）" if src_bills
              else "源库没有票据可抽样") if not bad else f"{len(bad)}/{len(src_bills)} 张票据不一致：{named}",
             value=len(bad), unit="张不一致", threshold="0", host=host,
             code="" if not bad and src_bills else Code.SAMPLE_MISMATCH)
    ph.facts.update(tables=len(s.counts), rows=sum(s.counts.values()), verify_seconds=round(s.seconds + t.seconds, 1),
                    across_engines=f"{s.dialect} -> {t.dialect}", fingerprints="not comparable across engines")
    return s.counts
