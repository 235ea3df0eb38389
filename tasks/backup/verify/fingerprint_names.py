"""Identifiers and columns of the fingerprint queries (tasks/backup/verify/fingerprint.py and the row
text of each dialect, fingerprint_rowtext.py, both build on these).

Names are never pasted unchecked: every schema, table and column name is matched against the
dialect's plain-identifier pattern and then double-quoted, exactly as the catalog spells it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DIALECTS = ("postgresql", "oracle")

_NAME = {
    "postgresql": re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"),
    "oracle": re.compile(r"^[A-Za-z][A-Za-z0-9_$#]{0,127}$"),
}


def checked_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect {dialect!r} is not supported (hint: postgresql or oracle)")
    return dialect


def check_name(dialect: str, name: str) -> str:
    """The name unchanged if it is a plain identifier of the dialect; ValueError otherwise."""
    if not isinstance(name, str) or not _NAME[checked_dialect(dialect)].match(name):
        raise ValueError(f"{name!r} is not a plain {dialect} identifier; refusing to put it into SQL "
                         f"(hint: letters, digits and _ only, as the catalog spells it)")
    return name


def quote(dialect: str, name: str) -> str:
    return f'"{check_name(dialect, name)}"'


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    max_bytes: int | None = None  # Oracle DATA_LENGTH; sizes the row text (4000-byte limit)
