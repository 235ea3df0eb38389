"""Rules that read the same rows share one scan of them (GX's metric batching, for query rules).

Most header rules are one query each over the same rows: `SELECT DISTINCT <keys> FROM <relations>
WHERE <the period> AND <the rule's condition>`. Run one by one, each reads the period's bills again
(14 reads of a quarter's million bills). Rules of one suite written in that exact form, with the same
keys, relations and period, and no subquery, are answered by one query that reads the rows once and says, per row,
which of them it breaks:

    SELECT <keys>, CASE WHEN <rule 1's WHERE> THEN 1 ELSE 0 END AS ebops_f0, ...
    FROM <relations> WHERE <the period> AND ((<rule 1's WHERE>) OR (<rule 2's WHERE>) ...)

Each rule's WHERE is copied verbatim, whole (period included), so its meaning, NULL handling and
operator precedence are those of its own query; each rule's failing keys are the distinct keys of
the rows whose flag is 1 (tasks/quality/gx_single_pass.py). A rule in any other form keeps its own
query. The suites in expectations/ stay one query per rule: this is how the runner executes them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.quality.suites import RuleCheck

_FORM = re.compile(
    r"^SELECT DISTINCT (?P<keys>[\w.]+(?:, [\w.]+)*) FROM (?P<rel>.+?) WHERE "
    r"(?P<where>(?P<period>(?P<a>\w+)\.issue_time >= \$\{start\} AND (?P=a)\.issue_time < \$\{end\}) AND .+)$", re.S)
FLAG = "ebops_f{}"


@dataclass(frozen=True)
class SharedScan:
    query: str  # the one query of the group (a template: placeholders as in the suites)
    flag: str  # this rule's column in it


def _parts(template: str):
    m = _FORM.match(" ".join(template.split()))
    # A condition with a subquery (DQ16's NOT EXISTS) keeps its own query: alone, the planner turns it
    # into an anti-join (one hash of the places); inside a CASE of the shared scan it would be a
    # subplan run once per bill.
    if m is None or "SELECT" in m.group("where").upper():
        return None
    return m.group("keys"), m.group("rel"), m.group("period"), m.group("where")


def plan(checks: list[RuleCheck], dialect: str) -> dict[str, SharedScan]:
    """check name -> its shared scan, for every rule that shares one with at least one other rule
    of its suite; a rule absent from the result runs its own query."""
    groups: dict[tuple, list[tuple[RuleCheck, str]]] = {}
    for c in checks:
        parts = _parts(c.queries[dialect])
        if parts is not None:
            keys, rel, period, where = parts
            groups.setdefault((c.suite, keys, rel, period), []).append((c, where))
    out = {}
    for (_, keys, rel, period), members in groups.items():
        if len(members) < 2:
            continue
        flags = ", ".join(f"CASE WHEN {where} THEN 1 ELSE 0 END AS {FLAG.format(i)}"
                          for i, (_, where) in enumerate(members))
        any_rule = " OR ".join(f"({where})" for _, where in members)
        query = f"SELECT {keys}, {flags} FROM {rel} WHERE {period} AND ({any_rule})"
        for i, (c, _) in enumerate(members):
            out[c.check] = SharedScan(query, FLAG.format(i))
    return out
