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
from typing import Any, Iterable, Sequence

NULL_TOKEN = "-"
_SPECIAL = ("NaN", "Infinity", "-Infinity")
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


def canonical(value: Any, padded: bool = False) -> str | None:
    """The canonical text of one driver value; None is the NULL marker."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return _number(Decimal(repr(value)))
    if isinstance(value, str):
        text = value.rstrip(" ") if padded else value
        return unicodedata.normalize("NFC", text) if text else None
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00.000000")
    if isinstance(value, time):
        zone = value.strftime("%z")
        return value.replace(tzinfo=None).strftime("%H:%M:%S.%f") + (f"{zone[:3]}:{zone[3:]}" if zone else "")
    if isinstance(value, timedelta):
        return f"{value // timedelta(microseconds=1)}us"
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return raw.hex() if raw else None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    raise TypeError(f"no canonical text for a {type(value).__module__}.{type(value).__name__} value "
                    f"(hint: the session must fetch exact types: LOBs as str/bytes, NUMBER as Decimal)")


def row_text(values: Sequence[Any], padded: Sequence[bool]) -> str:
    """The row's canonical text: one token per column, in the given order."""
    out = []
    for v, p in zip(values, padded):
        t = canonical(v, p)
        out.append(NULL_TOKEN if t is None else f"{len(t)}:{t}")
    return "".join(out)


def row_digest(values: Sequence[Any], padded: Sequence[bool]) -> bytes:
    """SHA-256 of the row's canonical text (32 bytes; hex only where it is shown)."""
    return hashlib.sha256(row_text(values, padded).encode("utf-8")).digest()


def key_order(values: Iterable[Any], padded: Sequence[bool]) -> tuple:
    """A primary key as Python orders it the same on both sides: numbers by value, text by code
    point (= UTF-8 byte order: PostgreSQL COLLATE "C", Oracle's BINARY sort), the rest by canonical
    text. Both streams must arrive in this order; the row check refuses one that does not."""
    out: list[tuple] = []
    for v, p in zip(values, padded):
        t = canonical(v, p)
        if t is None:
            out.append((0,))
        elif isinstance(v, (int, Decimal, float)) and not isinstance(v, bool) and t not in _SPECIAL:
            out.append((1, Decimal(t)))
        else:
            out.append((2, t))
    return tuple(out)


def key_label(values: Iterable[Any], padded: Sequence[bool]) -> str:
    """A key as the record names it: canonical texts joined by '/', NULL as '∅'."""
    return "/".join(canonical(v, p) or "∅" for v, p in zip(values, padded))
