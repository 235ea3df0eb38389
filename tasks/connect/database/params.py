"""One parameter style for checks in every dialect: `:name`, as Oracle writes it.

psycopg wants `%(name)s` and a doubled `%` everywhere once parameters are given, so SQL for
PostgreSQL is rewritten here. Quoted strings and identifiers are left alone, and `::type` casts are
not parameters.

Kept on purpose instead of SQLAlchemy's `text()` binds (considered for issue 14): `text()` also
takes `:name` inside a quoted literal for a parameter (`':a'` becomes `%(a)s`), which the case in
tests/unit/test_database_oracle.py shows this function does not.
"""
from __future__ import annotations

import re

_TOKENS = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str) -> str:
    out = []
    for i, part in enumerate(_TOKENS.split(sql)):
        part = part.replace("%", "%%")
        if i % 2 == 0:  # outside quotes
            part = _PARAM.sub(r"%(\1)s", part)
        out.append(part)
    return "".join(out)
