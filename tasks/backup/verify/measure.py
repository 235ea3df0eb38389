"""Measuring one side (production as of the backup, or the restored copy): object inventory, row
counts, chunked content fingerprints, the newest bill, and bills re-read for the field-by-field
sample. Every figure is computed inside the database (tasks.backup.verify.fingerprint); only chunk
hashes and the sampled bills travel to the worker.

`fetch(statement) -> list[dict]` runs one statement in the caller's session, so the caller decides
the transaction: production is measured inside the snapshot the backup was taken in (or with the
cut-off of a backup someone else took), the restored copy as it is.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify.fingerprint_names import check_name, quote
from tasks.backup.verify import reading as rd
from tasks.backup.verify import catalog as cat
from tasks.core.masking import mask_text

Fetch = Callable[[rd.Statement], list[dict]]
BILL_TABLE = "t_ebill_main"
BILL_TIME = "ivc_datetime"


@dataclass
class Measurement:
    inventory: frozenset[cat.DbObject]
    counts: dict[str, int]
    prints: dict[str, fp.TableFingerprint]
    newest_bill: datetime | None
    seconds: float
    scope: dict[str, str] = field(default_factory=dict)  # per table, what was compared (Chinese)

    def methods(self) -> dict[str, str]:
        """The fingerprint method of each table, for measuring the other side alike."""
        return {t: f.method for t, f in self.prints.items()}

    def key_shifts(self) -> dict[str, int]:
        """The key-range chunking of each table, for measuring the other side alike."""
        return {t: f.key_shift for t, f in self.prints.items() if f.key_shift is not None}

    def to_json(self) -> dict:
        """What is kept in the evidence beside the backup: enough to compare again later."""
        return {"counts": self.counts, "newest_bill": self.newest_bill.isoformat() if self.newest_bill else None,
                "seconds": round(self.seconds, 2), "scope": self.scope,
                "fingerprints": {t: {"method": f.method, "chunk_rows": f.chunk_rows, "columns": list(f.columns),
                                     "key_shift": f.key_shift, "excluded": list(f.excluded), "rows": f.rows, "total": f.total,
                                     "chunks": [[c.chunk_no, c.rows, c.hash] for c in f.chunks]}
                                 for t, f in self.prints.items()}}


def hashed_columns(shape: cat.TableShape, mutable: Iterable[str]) -> list[str] | None:
    """All columns but the mutable ones (None: all), names matched case-insensitively (Oracle folds)."""
    drop = {m.lower() for m in mutable}
    if not drop:
        return None
    return [c.name for c in shape.columns if c.name.lower() not in drop]


def plan_key_shifts(fetch: Fetch, dialect: str, schema: str, shapes: dict[str, cat.TableShape],
                    as_of: rd.AsOf | None, chunk_rows: int) -> tuple[dict[str, int], dict[str, int]]:
    """(key shift, row count) of every table with an integer first key, from its count and key range."""
    shifts, counts = {}, {}
    for name, shape in shapes.items():
        if fp.integer_key(dialect, shape) is not None:
            b = fetch(fp.key_bounds_statement(dialect, schema, shape, as_of))[0]
            counts[name] = int(b["row_count"])
            shifts[name] = fp.key_shift_for(counts[name], b["lo"], b["hi"], chunk_rows)
    return shifts, counts


def measure(fetch: Fetch, dialect: str, schema: str, *, as_of: rd.AsOf | None, chunk_rows: int,
            mutable_columns: dict[str, list[str]] | None = None,
            key_shifts: dict[str, int] | None = None, methods: dict[str, str] | None = None) -> Measurement:
    """One side. `key_shifts` and `methods`: the other side's chunking and hash method
    (Measurement.key_shifts(), .methods()), so that both are measured alike; None when this side is
    measured first (chosen from its own count and key range, and what its server can hash)."""
    began = time.monotonic()
    if dialect == "postgresql":
        # Row text depends on DateStyle, TimeZone, float digits...: the scratch database does not
        # inherit production's ALTER DATABASE settings, so both sides are read with the same ones.
        fetch(rd.Statement(rd.PG_SESSION_SQL))
    shapes = cat.shapes_from_rows(fetch(cat.columns_statement(dialect, schema)))
    mutable = {k.lower(): v for k, v in (mutable_columns or {}).items()}
    if key_shifts is None:
        key_shifts, _ = plan_key_shifts(fetch, dialect, schema, shapes, as_of, chunk_rows)
    if methods is None:
        has = fetch(rd.Statement(fp.PG_HAS_RECORD_HASH_SQL)) if dialect == "postgresql" else []
        record_hash = bool(has and has[0]["ok"])  # PostgreSQL 14+; not openGauss/KingbaseES of older lineage
        methods = {name: "hash" if record_hash and fp.hash_method_fits(
            shape, hashed_columns(shape, mutable.get(name.lower(), []))) else "sum" for name, shape in shapes.items()}
    prints = {}
    for name, shape in shapes.items():
        shift = key_shifts.get(name) if fp.integer_key(dialect, shape) is not None else None
        q = fp.fingerprint_statement(dialect, schema, shape, chunk_rows=chunk_rows, as_of=as_of,
                                     columns=hashed_columns(shape, mutable.get(name.lower(), [])), key_shift=shift,
                                     method=methods.get(name, "sum"))
        prints[name] = fp.fingerprint_from_rows(q, fetch(q))
    counts = cat.row_counts_from_rows(fetch(cat.row_counts_statement(dialect, schema, shapes, as_of)))
    inventory = cat.inventory_from_rows(fetch(cat.inventory_statement(dialect, schema)))
    newest = None
    bill = catalog_name(dialect, BILL_TABLE)
    if bill in shapes:
        params: dict = {}
        table = f"{quote(dialect, schema)}.{quote(dialect, bill)}{_as_of_scn(as_of, params)}"
        newest = fetch(rd.Statement(f"SELECT MAX({BILL_TIME}) AS newest FROM {table}", params))[0]["newest"]
    scope = {t: (as_of or rd.AsOf()).scope_zh(t) for t in shapes}
    return Measurement(inventory, counts, prints, newest, time.monotonic() - began, scope)


def catalog_name(dialect: str, name: str) -> str:
    """How the catalog spells a vendor table created without quotes: Oracle folds to upper case."""
    return name.upper() if dialect == "oracle" else name


def _as_of_scn(as_of: rd.AsOf | None, params: dict) -> str:
    """Oracle's flashback clause for a read as of the backup's SCN (the PostgreSQL family reads inside
    the exported snapshot instead, so it never gets one)."""
    if as_of is None or as_of.scn is None:
        return ""
    params["scn"] = int(as_of.scn)
    return " AS OF SCN :scn"


# ---------------------------------------------------------------- the field-by-field sample
def sample_keys_statement(dialect: str, schema: str, n: int, as_of: rd.AsOf | None) -> rd.Statement:
    """n bills spread evenly over the key order (not random: the same backup gives the same sample,
    and the record can be re-checked), among the rows the comparison covers."""
    params: dict = {"n": int(n)}
    where = ""
    if as_of is not None and as_of.cutoff(BILL_TABLE):
        where = f"WHERE {check_name(dialect, as_of.cutoff(BILL_TABLE))} < :as_of_time"
        params["as_of_time"] = as_of.before.replace(tzinfo=None)
    table = f"{quote(dialect, schema)}.{quote(dialect, catalog_name(dialect, BILL_TABLE))}"
    table += _as_of_scn(as_of, params)
    sql = (f"SELECT id, {BILL_TIME} FROM (SELECT id, {BILL_TIME}, ROW_NUMBER() OVER (ORDER BY id, {BILL_TIME}) AS rn, "
           f"COUNT(*) OVER () AS total FROM {table} {where}) s "
           f"WHERE MOD(rn - 1, GREATEST(CAST(total / :n AS INTEGER), 1)) = 0 ORDER BY id, {BILL_TIME} FETCH FIRST :n ROWS ONLY")
    return rd.Statement(sql, params)


def bill_statement(dialect: str, schema: str, bill_id: int, issued: datetime,
                   as_of: rd.AsOf | None = None) -> rd.Statement:
    params = {"bill_id": bill_id, "issued": issued}
    table = f"{quote(dialect, schema)}.{quote(dialect, catalog_name(dialect, BILL_TABLE))}"
    table += _as_of_scn(as_of, params)
    return rd.Statement(f"SELECT * FROM {table} WHERE id = :bill_id AND {BILL_TIME} = :issued", params)


def sample_bills(fetch: Fetch, dialect: str, schema: str, n: int, as_of: rd.AsOf | None,
                 keys: list[dict] | None = None) -> dict[tuple, dict | None]:
    """The sampled bills, whole rows keyed by (id, issue time): kept in memory only (personal data),
    compared field by field and never written. `keys` re-reads the other side's sample."""
    if keys is None:
        keys = fetch(sample_keys_statement(dialect, schema, n, as_of)) if n else []
    out = {}
    for k in keys:
        rows = fetch(bill_statement(dialect, schema, k["id"], k[BILL_TIME], as_of))
        out[(k["id"], k[BILL_TIME])] = rows[0] if rows else None
    return out


def compare_bill(source: dict | None, restored: dict | None, ignore: Iterable[str] = ()) -> list[str]:
    """Names of the fields that differ ('整行' when one side lacks the bill). Values are not
    returned: they may be personal data; the names say where to look."""
    if source is None or restored is None:
        return ["整行缺失"]
    skip = {c.lower() for c in ignore}
    keys = sorted(set(source) | set(restored))
    return [k for k in keys if k.lower() not in skip and source.get(k) != restored.get(k)]


def masked_bill_label(row: dict) -> str:
    """How a sampled bill is named in the record: its code and number (not personal data)."""
    return mask_text(f"{row.get('bill_batch_code', '?')}-{row.get('bill_number', '?')}")
