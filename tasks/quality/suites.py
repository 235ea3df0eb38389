"""The data-quality suites of expectations/: loading them, and filling a run's period into their SQL.

Every rule is an `UnexpectedRowsExpectation` whose query returns the failing rows' business keys
and nothing else, so no payer data can reach a result, a report or Data Docs. Each expectation
carries its PostgreSQL query as GX runs it and its Oracle variant in meta.oracle_query; both hold
the placeholders ${canon} (the canonical views' schema), ${start} and ${end} (the period, end
excluded) and ${now} (the run's clock, for "older than 24 h" rules), filled here per run. `{batch}`
is the suite's relation, filled by GX.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parents[2] / "expectations"
RULE_IDS = tuple(f"DQ{n:02d}" for n in range(1, 23))
_PLACEHOLDER = re.compile(r"\$\{(canon|start|end|now)\}")
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")


class SuiteError(ValueError):
    """A suite file that cannot be used as it is."""


@dataclass(frozen=True)
class RuleCheck:
    """One expectation of a suite: a rule (or one half of a rule that spans relations)."""
    suite: str
    relation: str  # the suite's relation: GX's {batch}
    rule_id: str
    check: str  # rule id, or rule id + part (DQ19_settlements)
    title_zh: str
    severity: str  # "error" -> FAIL, "warning" -> WARN
    scope: str  # which rows it judges: invoice | blue | red | item | settlement | stock | stock_period
    key: tuple[str, ...]
    queries: dict[str, str]  # dialect -> query template
    # finds defects outside the period's rows (DQ21's segments no bill of the period used): reported
    # as standing findings, counted against a run only the first time they are seen
    standing: bool = False


def load_suites(directory: Path = SUITES_DIR) -> dict[str, dict]:
    """{suite name: suite JSON} of every expectations/*.json, checked for what the runner relies on."""
    suites = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}: not valid JSON ({exc}) (hint: the suites are GX 1.x suite files)") from None
        for i, exp in enumerate(data.get("expectations", [])):
            meta = exp.get("meta") or {}
            missing = [k for k in ("rule_id", "severity", "title_zh", "scope", "key", "oracle_query") if k not in meta]
            if exp.get("type") != "unexpected_rows_expectation" or missing:
                raise SuiteError(f"{path}: expectation {i} needs type unexpected_rows_expectation and meta "
                                 f"{', '.join(missing) or '(complete)'} (hint: see the other expectations of the file)")
        suites[data["name"]] = data
    if not suites:
        raise SuiteError(f"no suites in {directory} (hint: expectations/*.json)")
    return suites


def rule_checks(suites: dict[str, dict]) -> list[RuleCheck]:
    out = []
    for name, data in suites.items():
        for exp in data["expectations"]:
            m = exp["meta"]
            out.append(RuleCheck(name, data["meta"]["relation"], m["rule_id"], m.get("check", m["rule_id"]), m["title_zh"],
                                 m["severity"], m["scope"], tuple(m["key"]),
                                 {"postgresql": exp["kwargs"]["unexpected_rows_query"], "oracle": m["oracle_query"]},
                                 bool(m.get("standing", False))))
    return out


def _ts(dialect: str, when: datetime) -> str:
    # No ':' in the text: SQLAlchemy's text() (which GX runs queries through) reads ':name' as a
    # bind parameter even inside quotes. A day literal plus whole seconds says the same.
    day, secs = when.date().isoformat(), when.hour * 3600 + when.minute * 60 + when.second
    if dialect == "oracle":
        return f"(DATE '{day}' + NUMTODSINTERVAL({secs}, 'SECOND'))" if secs else f"DATE '{day}'"
    return f"(DATE '{day}' + {secs} * INTERVAL '1 second')" if secs else f"DATE '{day}'"


def render(template: str, dialect: str, canon: str, start: date, end: date, now: datetime) -> str:
    """The query with the run's schema, period [start, end) and clock; {batch} is left for GX."""
    if not _SCHEMA.match(canon):
        raise SuiteError(f"database.schema {canon!r} is not a plain identifier (hint: ebill_canon)")
    values = {"canon": canon, "start": f"DATE '{start.isoformat()}'", "end": f"DATE '{end.isoformat()}'",
              "now": _ts(dialect, now)}
    # Only ${name}: a regex's '$' anchor stays as it is.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
