"""逐行比对: every row of every table of the schema, source against target, each side possibly of
another engine (Oracle -> openGauss / KingbaseES / PostgreSQL).

Each side streams a table ordered by its primary key (a server-side cursor, `batch` rows per round
trip: memory stays bounded whatever the table's size), every row becomes the SHA-256 of its
canonical text (tasks/migration/canonical.py: computed in Python on the driver's values, so the
same on both engines by construction), and the two ordered streams are merged by key: a key only
in the source is missing, one only in the target is extra, one on both sides with different
digests differs. The first `keep` keys of each kind are kept, masked (tasks/core/masking.py: a key
that looks like an ID number or a phone is never shown whole), with the counts of all of them.

The merge needs both sides in one order: numbers by value, text by code point. PostgreSQL sorts a
text key with COLLATE "C" (UTF-8 byte order = code point order), Oracle sorts it binary (NLS_SORT
BINARY, its default); each stream is checked to arrive strictly in that order, and a side that does
not (another NLS_SORT) is an error naming the table, never a silent wrong result.
Tables without a primary key are not compared row by row (no key to merge on): said per table; the
in-database fingerprints still cover them. Across engines those fingerprints cannot be compared, so
a table without a key is compared as a multiset of row digests instead (all of them in memory:
32 bytes a row), its differing rows named by digest. Table and column names are matched case-insensitively
(Oracle's catalog spells them upper-case, PostgreSQL's lower-case).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from tasks.backup.verify import catalog as cat
from tasks.backup.verify.fingerprint_names import quote
from tasks.backup.verify.measure import Fetch, catalog_name
from tasks.backup.verify.reading import Statement
from tasks.core.masking import mask_text
from tasks.migration.canonical import blank_padded, key_label, key_order, row_digest
from tasks.migration.db import Stream

KINDS = ("missing", "extra", "differing")
_PG_TEXT = ("character", "text", "bpchar", "varchar", "char")


@dataclass(frozen=True)
class Side:
    """One database as the row check reads it."""
    dialect: str
    schema: str
    fetch: Fetch
    stream: Stream


@dataclass
class TableRows:
    """One table compared row by row."""
    table: str
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0  # keys in the source only
    extra: int = 0  # keys in the target only
    differing: int = 0  # same key, different content
    keys: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    seconds: float = 0.0
    not_compared: str = ""  # why the table was not compared (Chinese); "" when it was
    count_only: bool = False  # left out across engines: nothing but its row count covers its content
    error: str = ""  # it could not be read or merged

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.differing

    @property
    def rows_read(self) -> int:
        return self.source_rows + self.target_rows


class RowOrderError(RuntimeError):
    """A side's rows did not arrive in the key order the merge needs."""


def read_shapes(side: Side) -> dict[str, cat.TableShape]:
    """The schema's tables (columns, primary key), keyed by lower-case name."""
    rows = side.fetch(cat.columns_statement(side.dialect, catalog_name(side.dialect, side.schema)))
    return {name.lower(): shape for name, shape in cat.shapes_from_rows(rows).items()}


def _text_type(dialect: str, data_type: str) -> bool:
    t = data_type.lower()
    return t.startswith(_PG_TEXT) if dialect == "postgresql" else t in ("char", "nchar", "varchar2", "nvarchar2")


def rows_statement(dialect: str, schema: str, shape: cat.TableShape, columns: list[str]) -> Statement:
    """Every row of one table, the given columns in that order, ordered by the primary key (text
    keys in code-point order on PostgreSQL: COLLATE "C")."""
    cols = ", ".join(f"t.{quote(dialect, c)}" for c in columns)
    order = []
    for k in shape.pk:
        ref = f"t.{quote(dialect, k)}"
        if dialect == "postgresql" and _text_type(dialect, shape.column(k).data_type):
            ref += ' COLLATE "C"'
        order.append(ref)
    return Statement(f"SELECT {cols}\nFROM {quote(dialect, schema)}.{quote(dialect, shape.name)} t"
                     + (f"\nORDER BY {', '.join(order)}" if order else ""))


def _digests(side: Side, shape: cat.TableShape, columns: list[str], batch: int,
             counter: list[int]) -> Iterator[tuple[tuple, bytes, list, list[bool]]]:
    """(key order, row digest, key values, their padding) per row, checked to arrive in strictly
    increasing key order (the key's label is only made for the keys that are kept)."""
    padded = [blank_padded(shape.column(c).data_type) for c in columns]
    at = [columns.index(k) for k in shape.pk]
    kpad = [padded[i] for i in at]
    prev: tuple | None = None
    for row in side.stream(rows_statement(side.dialect, catalog_name(side.dialect, side.schema), shape, columns), batch):
        kv = [row[i] for i in at]
        order = key_order(kv, kpad)
        if prev is not None and not prev < order:
            raise RowOrderError(f"{side.dialect} {shape.name}: key {key_label(kv, kpad)} arrived after a greater or "
                                f"equal key (hint: Oracle NLS_SORT must be BINARY; a primary key must be unique)")
        prev = order
        counter[0] += 1
        yield order, row_digest(row, padded), kv, kpad


def _kept(out: TableRows, kind: str, row: tuple, keep: int) -> None:
    setattr(out, kind, getattr(out, kind) + 1)
    if len(out.keys[kind]) < keep:
        out.keys[kind].append(mask_text(key_label(row[2], row[3])))


def compare_table(src: Side, tgt: Side, s_shape: cat.TableShape, t_shape: cat.TableShape, *,
                  keep: int = 100, batch: int = 5000) -> TableRows:
    """One table merged by primary key: counts of missing, extra and differing rows, and their first keys."""
    out = TableRows(table=s_shape.name)
    began = time.monotonic()
    s_cols = [c.name for c in s_shape.columns]
    t_names = {c.name.lower(): c.name for c in t_shape.columns}
    if set(t_names) != {c.lower() for c in s_cols} or [k.lower() for k in s_shape.pk] != [k.lower() for k in t_shape.pk]:
        only_s = sorted({c.lower() for c in s_cols} - set(t_names))
        only_t = sorted(set(t_names) - {c.lower() for c in s_cols})
        out.error = (f"两边的列或主键不同（仅源库：{'、'.join(only_s) or '无'}；仅目标库：{'、'.join(only_t) or '无'}；"
                     f"主键 {','.join(s_shape.pk)} / {','.join(t_shape.pk)}）")
        return out
    t_cols = [t_names[c.lower()] for c in s_cols]  # the target's columns in the source's order
    s_n, t_n = [0], [0]
    a_it = _digests(src, s_shape, s_cols, batch, s_n)
    b_it = _digests(tgt, t_shape, t_cols, batch, t_n)
    try:
        a, b = next(a_it, None), next(b_it, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                _kept(out, "missing", a, keep)
                a = next(a_it, None)
            elif a is None or b[0] < a[0]:
                _kept(out, "extra", b, keep)
                b = next(b_it, None)
            else:
                if a[1] != b[1]:
                    _kept(out, "differing", a, keep)
                a, b = next(a_it, None), next(b_it, None)
    finally:  # a table cut off mid-way closes both cursors before the next table opens its own
        a_it.close()
        b_it.close()
    out.source_rows, out.target_rows = s_n[0], t_n[0]
    out.seconds = time.monotonic() - began
    return out


def compare_unkeyed(src: Side, tgt: Side, s_shape: cat.TableShape, t_shape: cat.TableShape, *,
                    keep: int = 100, batch: int = 5000) -> TableRows:
    """A table without a primary key, across engines: the two sides' row digests as multisets; a
    digest more often in the source is missing, more often in the target extra (named by digest)."""
    out = TableRows(table=s_shape.name)
    began = time.monotonic()
    s_cols = [c.name for c in s_shape.columns]
    t_names = {c.name.lower(): c.name for c in t_shape.columns}
    if set(t_names) != {c.lower() for c in s_cols}:
        out.error = "两边的列不同"
        return out
    seen = []
    for side, shape, cols in ((src, s_shape, s_cols), (tgt, t_shape, [t_names[c.lower()] for c in s_cols])):
        padded = [blank_padded(shape.column(c).data_type) for c in cols]
        st = rows_statement(side.dialect, catalog_name(side.dialect, side.schema), shape, cols)
        seen.append(Counter(row_digest(row, padded) for row in side.stream(st, batch)))
    out.source_rows, out.target_rows = sum(seen[0].values()), sum(seen[1].values())
    for kind, diff in (("missing", seen[0] - seen[1]), ("extra", seen[1] - seen[0])):
        for digest, n in sorted(diff.items()):
            setattr(out, kind, getattr(out, kind) + n)
            if len(out.keys[kind]) < keep:
                out.keys[kind].append(f"无主键行 sha256:{digest.hex()[:16]}" + (f" ×{n}" if n > 1 else ""))
    out.seconds = time.monotonic() - began
    return out


def compare_schema(src: Side, tgt: Side, *, keep: int = 100, batch: int = 5000, max_rows: int | None = None,
                   counts: dict[str, int] | None = None) -> list[TableRows]:
    """Every table of the source's schema against the target's, in name order. `max_rows`: tables
    with more rows than this in the source (`counts`, by table name) are left out, said per table.
    Sides of two engines: tables without a key as multisets, and no record leans on fingerprints."""
    across = src.dialect != tgt.dialect
    covered = "跨引擎时库内指纹不可比：此表只比较了行数" if across else "内容指纹已比较"
    s_shapes, t_shapes = read_shapes(src), read_shapes(tgt)
    by_lower = {k.lower(): v for k, v in (counts or {}).items()}
    if not s_shapes:  # never "0 tables, all equal"
        return [TableRows(table=src.schema, error="源库模式中没有表（模式名或账号权限不对？）")]
    out = []
    for name in sorted(s_shapes):
        shape = s_shapes[name]
        if name not in t_shapes:
            out.append(TableRows(table=shape.name, error="目标库没有此表"))
        elif not shape.pk and not across:
            out.append(TableRows(table=shape.name, not_compared="无主键，无法按键逐行比对（内容指纹已比较）"))
        elif max_rows is not None and by_lower.get(name, 0) > max_rows:
            out.append(TableRows(table=shape.name, source_rows=by_lower[name], count_only=across,
                                 not_compared=f"{by_lower[name]} 行，超过站点设置 verify_rows_max_table_rows={max_rows}"
                                              f"（{covered}）"))
        else:
            try:
                how = compare_table if shape.pk else compare_unkeyed
                out.append(how(src, tgt, shape, t_shapes[name], keep=keep, batch=batch))
            except Exception as exc:  # noqa: BLE001 - one table's trouble is that table's record
                out.append(TableRows(table=shape.name, error=mask_text(f"{type(exc).__name__}: {exc}")))
    for name in sorted(set(t_shapes) - set(s_shapes)):
        out.append(TableRows(table=t_shapes[name].name, error="源库没有此表（目标库多出）"))
    return out
