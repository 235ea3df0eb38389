"""The canonical text form of a row, the same whichever engine it was read from (Oracle, PostgreSQL,
openGauss, KingbaseES), and its SHA-256: what the migration's row-by-row check
(tasks/migration/rowcheck.py) compares.

It is computed in Python on the values the drivers return, never in SQL, so the two engines cannot
disagree on it: the only requirement on a driver is that it returns exact types. psycopg does
(numeric -> Decimal, timestamptz -> an aware datetime, bytea -> bytes); python-oracledb is told to
by the row check's output type handler (tasks/connect/database/oracle.exact_values: every NUMBER as
Decimal, CLOB/NCLOB as str, BLOB as bytes).

One value -> one text, by the driver's Python type:

| value | canonical text |
|---|---|
| None | the NULL marker (no text; see the token below) |
| '' (str or bytes of length 0) | the NULL marker: Oracle stores '' as NULL, so a PostgreSQL '' and an Oracle NULL are the same bill |
| bool | `1` / `0` (PostgreSQL boolean = Oracle NUMBER(1)) |
| int, Decimal | plain decimal, no exponent, no trailing zeros, no `+`, `-0` as `0`: 12.50 -> `12.5`, 1E+3 -> `1000`; NaN `NaN`, infinities `Infinity` / `-Infinity` |
| float | its shortest round-trip decimal (repr) written as above: 0.1 -> `0.1` (BINARY_DOUBLE = double precision) |
| datetime without zone | `YYYY-MM-DDTHH:MM:SS.ffffff` as stored (the hospital's wall clock; Oracle DATE and TIMESTAMP, PostgreSQL timestamp); digits below the microsecond are not compared (Python's datetime has none) |
| datetime with zone | converted to UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (timestamptz, TIMESTAMP WITH [LOCAL] TIME ZONE); a column with a zone on one side and none on the other differs: its meaning changed |
| date | `YYYY-MM-DDT00:00:00.000000`: an Oracle DATE at midnight equals a PostgreSQL date |
| time | `HH:MM:SS.ffffff` (with zone: `+HH:MM` appended) |
| timedelta | whole microseconds and `us` (INTERVAL DAY TO SECOND = interval) |
| str | Unicode NFC; in a blank-padded column (CHAR, NCHAR, character(n)) trailing spaces removed first: both engines pad, the padding is not data |
| bytes | lower-case hex (RAW, BLOB, bytea) |
| UUID | its 36-character text; dict / list (jsonb) JSON with sorted keys, no spaces |

Anything else (an unread LOB locator, an object type) is refused with its type named, never turned
into text by str(). A row is the concatenation of its columns' tokens in the source's column order:
`-` for the NULL marker, `<length in characters>:<text>` otherwise, so that no two rows share a text;
its digest is the SHA-256 of that text in UTF-8. A number stored as text on one side and as a number
on the other compares equal when the texts are; the inventory and the fingerprints judge the types.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

NULL_TOKEN = "-"
_INFINITE = (math.inf, -math.inf)
# PostgreSQL format_type: character(n), bpchar; Oracle DATA_TYPE: CHAR, NCHAR (not VARCHAR2, character varying)
_BLANK_PADDED = re.compile(r"^(character|bpchar)(\(\d+\))?$|^N?CHAR$")


def blank_padded(data_type: str) -> bool:
    """Whether a column of this catalog type is blank-padded (PostgreSQL format_type or Oracle DATA_TYPE)."""
    return bool(_BLANK_PADDED.match(data_type.strip()))


def _number(d: Decimal) -> str:
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "Infinity" if d > 0 else "-Infinity"
    if d.is_zero():
        return "0"
    return format(d.normalize(), "f")


def _float(v: float, _p: bool) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return _number(Decimal(repr(v)))


def _text(v: str, padded: bool) -> str | None:
    text = v.rstrip(" ") if padded else v
    return unicodedata.normalize("NFC", text) if text else None


def _datetime(v: datetime, _p: bool) -> str:
    if v.tzinfo is not None and v.utcoffset() is not None:
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return v.replace(tzinfo=None).isoformat(timespec="microseconds")


def _time(v: time, _p: bool) -> str:
    zone = v.strftime("%z")
    return v.replace(tzinfo=None).isoformat(timespec="microseconds") + (f"{zone[:3]}:{zone[3:]}" if zone else "")


def _bytes(v: bytes | bytearray | memoryview, _p: bool) -> str | None:
    raw = bytes(v)
    return raw.hex() if raw else None


# By exact type first (a dict lookup: the row check canonicalises millions of values), then by
# isinstance in this order for a driver's subclasses (bool before int, datetime before date).
_KINDS: list[tuple[type | tuple[type, ...], Callable[[Any, bool], str | None]]] = [
    (str, _text),
    (bool, lambda v, _p: "1" if v else "0"),
    (int, lambda v, _p: str(v)),
    (Decimal, lambda v, _p: _number(v)),
    (float, _float),
    (datetime, _datetime),
    (date, lambda v, _p: v.isoformat() + "T00:00:00.000000"),
    (time, _time),
    (timedelta, lambda v, _p: f"{v // timedelta(microseconds=1)}us"),
    ((bytes, bytearray, memoryview), _bytes),
    (uuid.UUID, lambda v, _p: str(v)),
    ((dict, list), lambda v, _p: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)),
]
_BY_TYPE = {t: f for ts, f in _KINDS for t in (ts if isinstance(ts, tuple) else (ts,))}


def canonical(value: Any, padded: bool = False) -> str | None:
    """The canonical text of one driver value; None is the NULL marker."""
    if value is None:
        return None
    to_text = _BY_TYPE.get(type(value))
    if to_text is None:
        to_text = next((f for ts, f in _KINDS if isinstance(value, ts)), None)
        if to_text is None:
            raise TypeError(f"no canonical text for a {type(value).__module__}.{type(value).__name__} value "
                            f"(hint: the session must fetch exact types: LOBs as str/bytes, NUMBER as Decimal)")
    return to_text(value, padded)


def row_text(values: Sequence[Any], padded: Sequence[bool]) -> str:
    """The row's canonical text: one token per column, in the given order."""
    return "".join(NULL_TOKEN if (t := canonical(v, p)) is None else f"{len(t)}:{t}" for v, p in zip(values, padded))


def row_digest(values: Sequence[Any], padded: Sequence[bool]) -> bytes:
    """SHA-256 of the row's canonical text (32 bytes; hex only where it is shown)."""
    return hashlib.sha256(row_text(values, padded).encode("utf-8")).digest()


def key_order(values: Iterable[Any], padded: Sequence[bool]) -> tuple:
    """A primary key as Python orders it the same on both sides: numbers by value, text by code
    point (= UTF-8 byte order: PostgreSQL COLLATE "C", Oracle's BINARY sort), the rest by canonical
    text. Both streams must arrive in this order; the row check refuses one that does not."""
    out: list[tuple] = []
    for v, p in zip(values, padded):
        if type(v) in (int, Decimal, float) and v == v and v not in _INFINITE:  # by value: 1 == 1.0 == Decimal('1.00')
            out.append((1, v))
        else:
            t = canonical(v, p)
            out.append((0,) if t is None else (2, t))
    return tuple(out)


def key_label(values: Iterable[Any], padded: Sequence[bool]) -> str:
    """A key as the record names it: canonical texts joined by '/', NULL as '∅'."""
    return "/".join(canonical(v, p) or "∅" for v, p in zip(values, padded))
