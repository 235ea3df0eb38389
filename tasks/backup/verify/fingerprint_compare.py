"""Judging a restored copy against its source: inventories, row counts and fingerprints of the
two databases (tasks/backup/verify/fingerprint.py) become CheckResult records for the 备份恢复验证记录.

Pure functions: the caller measures both sides, then passes what it measured. A table missing on
one side is a FAIL, never silently skipped; two fingerprints taken with different settings cannot
be compared and are an ERROR, not a pass.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Iterable, Mapping

from tasks.backup.verify.reading import AsOf
from tasks.backup.verify.catalog import DbObject
from tasks.backup.verify.fingerprint import TableFingerprint
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow

KIND_ZH = {"table": "表", "index": "索引", "constraint": "约束", "sequence": "序列", "view": "视图"}
MAX_NAMED = 20  # objects or chunks named in a reason; the full list is in raw
SOURCE_ZH, RESTORED_ZH = "源库", "恢复库"


def _base(check: str, title: str, site: str, host: str | None, started_at: datetime | None) -> dict:
    return dict(check=check, title=title, site=site, host=host, started_at=started_at or utcnow(),
                finished_at=utcnow())


def _order(o: DbObject) -> tuple:
    return (o.kind, o.name, o.table or "")


def _name(o: DbObject) -> str:
    where = f"（{o.table}）" if o.table and o.table != o.name and o.kind != "table" else ""
    return f"{KIND_ZH.get(o.kind, o.kind)} {o.name}{where}"


def _listed(objs: list, fmt=str) -> str:
    shown = "、".join(fmt(o) for o in objs[:MAX_NAMED])
    return shown + (f" 等 {len(objs)} 项" if len(objs) > MAX_NAMED else "")


def compare_inventories(site: str, source: Iterable[DbObject], restored: Iterable[DbObject], *,
                        schema: str = "", host: str | None = None,
                        started_at: datetime | None = None) -> list[CheckResult]:
    """One record: the objects each side has and the other lacks (set difference both ways)."""
    src, dst = frozenset(source), frozenset(restored)
    missing, extra = sorted(src - dst, key=_order), sorted(dst - src, key=_order)
    base = _base("restore_inventory", "对象清单一致", site, host, started_at)
    counts = "、".join(f"{KIND_ZH[k]} {sum(1 for o in src if o.kind == k)}" for k in KIND_ZH
                      if any(o.kind == k for o in src))
    raw = json.dumps({"missing_in_restored": [asdict(o) for o in missing],
                      "extra_in_restored": [asdict(o) for o in extra]}, ensure_ascii=False)
    if not src:
        return [CheckResult(**base, target=schema, status=Status.ERROR, raw=raw, value=len(dst), unit="项",
                            code=Code.SOURCE_INVENTORY_EMPTY,
                            reason=f"{SOURCE_ZH}对象清单为空，无法比较（模式名或账号权限不对？）")]
    if not missing and not extra:
        return [CheckResult(**base, target=schema, status=Status.OK, value=0, unit="项不同", threshold="0",
                            reason=f"两边对象相同，共 {len(src)} 项（{counts}）", raw=raw)]
    parts = []
    if missing:
        parts.append(f"{RESTORED_ZH}缺少 {len(missing)} 项：{_listed(missing, _name)}")
    if extra:
        parts.append(f"{RESTORED_ZH}多出 {len(extra)} 项：{_listed(extra, _name)}")
    return [CheckResult(**base, target=schema, status=Status.FAIL, value=len(missing) + len(extra),
                        unit="项不同", threshold="0", reason="；".join(parts), raw=raw, code=Code.OBJECTS_DIFFER)]


def _table_pairs(source: Mapping, restored: Mapping, as_of: AsOf | None):
    """Every table of either side with its comparison scope and both sides' values (None if absent)."""
    for table in sorted(set(source) | set(restored)):
        yield table, (as_of or AsOf()).scope_zh(table), source.get(table), restored.get(table)


def compare_row_counts(site: str, source: Mapping[str, int], restored: Mapping[str, int], *,
                       as_of: AsOf | None = None, host: str | None = None,
                       started_at: datetime | None = None) -> list[CheckResult]:
    """One record per table of either side: equal counts OK, otherwise FAIL with both counts."""
    out = []
    for table, scope, s, r in _table_pairs(source, restored, as_of):
        base = _base("restore_row_count", "各表行数一致", site, host, started_at)
        raw = json.dumps({"table": table, "source": s, "restored": r, "scope": scope}, ensure_ascii=False)
        if s is None or r is None:
            side = RESTORED_ZH if r is None else SOURCE_ZH
            out.append(CheckResult(**base, target=table, status=Status.FAIL, value=r, unit="行", code=Code.TABLE_MISSING,
                                   threshold=f"= {SOURCE_ZH} {s} 行" if s is not None else "",
                                   reason=f"表 {table} 在{side}中没有行数（表不存在）", raw=raw))
            continue
        ok = s == r
        diff = "" if ok else f"，{'少' if r < s else '多'} {abs(s - r)} 行"
        out.append(CheckResult(**base, target=table, status=Status.OK if ok else Status.FAIL, value=r, unit="行",
                               code=Code.OK if ok else Code.ROW_COUNT_MISMATCH,
                               threshold=f"= {SOURCE_ZH} {s} 行",
                               reason=f"表 {table}：{SOURCE_ZH} {s} 行，{RESTORED_ZH} {r} 行{diff}（{scope}）",
                               raw=raw))
    return out


def _chunk_zh(fp: TableFingerprint, chunk_no: int) -> str:
    chunk = next((c for c in fp.chunks if c.chunk_no == chunk_no), None)
    keys = ""
    if chunk is not None and fp.key and chunk.first_key is not None:
        keys = f"，实有 {fp.key[0]} {chunk.first_key}…{chunk.last_key}"
    if fp.key_shift is not None:
        lo, hi = chunk_no << fp.key_shift, ((chunk_no + 1) << fp.key_shift) - 1
        return f"第 {chunk_no} 块（{fp.key[0]} {lo}–{hi}{keys}）"
    lo, hi = chunk_no * fp.chunk_rows + 1, (chunk_no + 1) * fp.chunk_rows
    return f"第 {chunk_no} 块（按{'主键' if fp.key else '行哈希'}排序第 {lo}–{hi} 行{keys}）"


def differing_chunks(source: TableFingerprint, restored: TableFingerprint) -> list[int]:
    """Chunk numbers whose row count or hash differ, or that one side lacks."""
    s = {c.chunk_no: (c.rows, c.hash) for c in source.chunks}
    r = {c.chunk_no: (c.rows, c.hash) for c in restored.chunks}
    return sorted(n for n in set(s) | set(r) if s.get(n) != r.get(n))


def compare_fingerprints(site: str, source: Mapping[str, TableFingerprint], restored: Mapping[str, TableFingerprint],
                         *, as_of: AsOf | None = None, host: str | None = None,
                         started_at: datetime | None = None) -> list[CheckResult]:
    """One record per table of either side, naming the chunks that differ."""
    out = []
    for table, scope, s, r in _table_pairs(source, restored, as_of):
        base = _base("restore_fingerprint", "内容指纹一致", site, host, started_at)
        if s is None or r is None:
            side = RESTORED_ZH if r is None else SOURCE_ZH
            out.append(CheckResult(**base, target=table, status=Status.FAIL, unit="块不同", code=Code.TABLE_MISSING,
                                   reason=f"表 {table} 在{side}中没有内容指纹（表不存在）",
                                   raw=json.dumps({"table": table, "missing_in": side}, ensure_ascii=False)))
            continue
        setting = lambda f: (f.method, f.chunk_rows, f.columns, f.key, f.key_shift)  # noqa: E731
        raw = json.dumps({"table": table, "scope": scope, "method": s.method, "chunk_rows": s.chunk_rows,
                          "chunking": s.chunking, "columns": list(s.columns), "key": list(s.key), "excluded": list(s.excluded),
                          "source": {"rows": s.rows, "total": s.total,
                                     "chunks": [[c.chunk_no, c.rows, c.hash] for c in s.chunks]},
                          "restored": {"rows": r.rows, "total": r.total,
                                       "chunks": [[c.chunk_no, c.rows, c.hash] for c in r.chunks]}},
                         ensure_ascii=False)
        excluded = f"；未纳入指纹的列：{'、'.join(s.excluded)}" if s.excluded else ""
        if setting(s) != setting(r):
            out.append(CheckResult(**base, target=table, status=Status.ERROR, unit="块不同", raw=raw,
                                   code=Code.FINGERPRINTS_INCOMPARABLE,
                                   reason=f"表 {table}：两边指纹的算法、分块、列或排序键不同，无法比较"))
            continue
        diff = differing_chunks(s, r)
        n = max(len(s.chunks), len(r.chunks))
        threshold = (f"0（按 {s.key[0]} 键范围分块，每块 2^{s.key_shift} 个键，{s.method}）" if s.key_shift is not None
                     else f"0（每块 {s.chunk_rows} 行，{s.method}）")
        if not diff:
            out.append(CheckResult(**base, target=table, status=Status.OK, value=0, unit="块不同", threshold=threshold,
                                   reason=f"表 {table}：{s.rows} 行、{n} 块全部一致，总指纹 {s.total[:12]}（{scope}）"
                                          f"{excluded}", raw=raw))
            continue
        named = _listed(diff, lambda c: _chunk_zh(s if any(x.chunk_no == c for x in s.chunks) else r, c))
        shift = ("；行数不同，其后各块按排名错位，首个不同块即差异所在" if s.rows != r.rows and s.key_shift is None else "")
        out.append(CheckResult(**base, target=table, status=Status.FAIL, value=len(diff), unit="块不同",
                               code=Code.CHECKSUM_MISMATCH,
                               threshold=threshold,
                               reason=f"表 {table}：{n} 块中 {len(diff)} 块不一致：{named}{shift}（{scope}）{excluded}",
                               raw=raw))
    return out
