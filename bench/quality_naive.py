"""The naive Great Expectations run of bench/quality_bench.py, phase (b): whole-table assets, the
built-in single-table expectations a GX user would reach for, GX's default result format; the rules
no built-in can state keep their UnexpectedRowsExpectation query from expectations/*.json."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import warnings
from datetime import datetime, timedelta

from quality_common import PW_ENV, READ_RELATIONS, period  # the same account and relations as quality_bench


def naive_expectations(gx, C, now: datetime) -> tuple[list[tuple[str, str, object]], dict[str, str]]:
    """(rule, relation, expectation) of the built-ins a GX user would write, and what they leave out.

    Rules absent here keep their UnexpectedRowsExpectation (they span relations or need arithmetic
    across columns: DQ05-08, DQ11, DQ12, DQ16, DQ19, DQ21, DQ22)."""
    E = gx.expectations
    inv, item = "ebill_invoice", "ebill_invoice_item"
    blue, red = C("bill_kind") == "B", C("bill_kind") == "R"
    self_pay, inpatient = C("med_care_type") == "07", C("bus_type") == "01"
    pays = ("fund_pay", "other_fund_pay", "account_pay", "self_cash_pay")
    out: list[tuple[str, str, object]] = []

    def add(rule: str, relation: str, make) -> None:
        out.append((rule, relation, make))

    for rule, col, regex in (("DQ01", "bill_code", r"^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5])[0-9]{6}$"),
                             ("DQ02", "bill_no", r"^[0-9]{10}$"), ("DQ03", "check_code", r"^[0-9a-z]{6}$")):
        add(rule, inv, lambda col=col, regex=regex: E.ExpectColumnValuesToMatchRegex(column=col, regex=regex))
        add(rule, inv, lambda col=col: E.ExpectColumnValuesToNotBeNull(column=col))
    add("DQ04", inv, lambda: E.ExpectCompoundColumnsToBeUnique(column_list=["bill_code", "bill_no"]))
    for col in ("total_amt", *pays):
        add("DQ09", inv, lambda col=col: E.ExpectColumnValuesToBeBetween(column=col, min_value=0, row_condition=blue))
    add("DQ09", inv, lambda: E.ExpectColumnValuesToBeBetween(column="total_amt", max_value=0, row_condition=red))
    for col in pays[:3]:
        add("DQ10", inv, lambda col=col: E.ExpectColumnValuesToBeBetween(column=col, min_value=0, max_value=0,
                                                                          row_condition=self_pay))
    add("DQ13", inv, lambda: E.ExpectColumnValuesToNotBeNull(column="bus_time"))
    add("DQ13", inv, lambda: E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="issue_time", column_B="bus_time",
                                                                        or_equal=True))
    add("DQ13", inv, lambda: E.ExpectColumnMaxToBeBetween(column="issue_time", max_value=now))
    for col in ("hospital_no", "in_date", "out_date"):
        add("DQ14", inv, lambda col=col: E.ExpectColumnValuesToNotBeNull(column=col, row_condition=inpatient))
    add("DQ14", inv, lambda: E.ExpectColumnValuesToMatchRegex(column="hospital_no", regex=r"\S",
                                                               row_condition=inpatient))
    add("DQ14", inv, lambda: E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="out_date", column_B="in_date",
                                                                        or_equal=True, row_condition=inpatient))
    add("DQ14", inv, lambda: E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="issue_time", column_B="out_date",
                                                                        or_equal=True, row_condition=inpatient))
    for relation, col, values in ((inv, "bus_type", ["01", "02", "03", "04", "05", "06", "07", "08"]),
                                  (inv, "med_care_type", ["01", "02", "03", "04", "05", "06", "07", "90", "99"]),
                                  (inv, "payer_type", ["1", "2"]),
                                  (item, "charge_code", [f"{n:02d}" for n in range(1, 15)])):
        add("DQ15", relation, lambda col=col, values=values: E.ExpectColumnValuesToBeInSet(column=col,
                                                                                           value_set=values))
        add("DQ15", relation, lambda col=col: E.ExpectColumnValuesToNotBeNull(column=col))
    add("DQ17", inv, lambda: E.ExpectColumnValuesToNotBeNull(column="sign_status"))
    add("DQ17", inv, lambda: E.ExpectColumnValuesToBeInSet(column="sign_status", value_set=["1"]))
    old = C("issue_time") < now - timedelta(hours=24)
    add("DQ18", inv, lambda: E.ExpectColumnValuesToNotBeNull(column="upload_status", row_condition=old))
    add("DQ18", inv, lambda: E.ExpectColumnValuesToBeInSet(column="upload_status", value_set=["1"], row_condition=old))
    add("DQ20", inv, lambda: E.ExpectColumnValuesToMatchRegex(column="tel", regex=r"^1[0-9]{10}$"))
    add("DQ20", inv, lambda: E.ExpectColumnValuesToMatchRegex(column="id_card_no", regex=r"^[0-9]{17}[0-9Xx]$"))
    left_out = {"DQ13": "issue_time <= bus_time + 24 h", "DQ20": "the ID number's GB 11643 check digit"}
    return out, left_out


def phase_naive(p: dict, t0: float) -> dict:
    from urllib.parse import quote

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column as C
    from sqlalchemy import text

    from tasks.connect.database.base import CANONICAL_COLUMNS
    from tasks.core.masking import mask_text
    from tasks.quality.gx_run import _quiet_gx
    from tasks.quality.suites import load_suites, render, rule_checks

    start, end, now = period(p)
    password = os.environ.get(PW_ENV)
    if not password:
        raise RuntimeError(f"{PW_ENV} is not set (hint: eval \"$(.venv/bin/ebops sandbox env)\")")
    imported = time.perf_counter() - t0
    _quiet_gx()
    warnings.simplefilter("ignore")
    real_stdout = sys.stdout

    def say(msg: str) -> None:  # GX's own prints ("should contain {batch}" per rule query) are dropped
        print(msg, file=real_stdout, flush=True)

    def clean(msg: str) -> str:
        return " ".join(mask_text(str(msg)).replace(password, "***").replace(quote(password, safe=""), "***").split())

    with contextlib.redirect_stdout(io.StringIO()):
        t1 = time.perf_counter()
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)  # display only
        url = (f"postgresql+psycopg://{quote(p['user'], safe='')}:{quote(password, safe='')}"
               f"@127.0.0.1:{p['port']}/{p['database']}")
        ds = ctx.data_sources.add_postgres(name="ebill_naive", connection_string=url)
        assets = {rel: ds.add_table_asset(name=rel, table_name=rel, schema_name=p["canon"])
                  for rel in CANONICAL_COLUMNS}
        batches = {rel: a.add_batch_definition_whole_table("whole") for rel, a in assets.items()}
        setup = time.perf_counter() - t1

        builtins, left_out = naive_expectations(gx, C, now)
        with_builtin = {rule for rule, _, _ in builtins}
        kinds: dict[str, list[tuple[str, object]]] = {"builtin": [], "queries": []}
        construct_errors = []
        for rule, relation, make in builtins:
            try:
                kinds["builtin"].append((relation, make()))
            except Exception as exc:  # noqa: BLE001 - the bench goes on without it
                construct_errors.append(f"{rule}: {clean(f'{type(exc).__name__}: {exc}')[:300]}")
        checks = rule_checks(load_suites())
        for c in checks:
            if c.rule_id not in with_builtin:
                kinds["queries"].append((c.relation, gx.expectations.UnexpectedRowsExpectation(
                    unexpected_rows_query=render(c.queries["postgresql"], "postgresql", p["canon"], start, end, now),
                    description=c.check)))
        say(f"   built-ins for {', '.join(sorted(with_builtin))}; rule queries (as ours) for "
            f"{', '.join(sorted({c.rule_id for c in checks} - with_builtin))}")
        for rule, what in left_out.items():
            say(f"   left out (no built-in states it): {rule} {what}")
        for e in construct_errors:
            say(f"   could not build: {e}")

        out = {"import_s": imported, "setup_s": setup, "errored": len(construct_errors), "failed": 0,
               "expectations": sum(len(v) for v in kinds.values())}
        for kind, exps in kinds.items():
            t2 = time.perf_counter()
            vds = []
            for rel in CANONICAL_COLUMNS:
                mine = [e for r, e in exps if r == rel]
                if mine:
                    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{kind}_{rel}", expectations=mine))
                    vds.append(ctx.validation_definitions.add(gx.ValidationDefinition(
                        name=f"{kind}_{rel}", data=batches[rel], suite=suite)))
            checkpoint = ctx.checkpoints.add(gx.Checkpoint(name=f"naive_{kind}", validation_definitions=vds))
            try:
                result = checkpoint.run()  # GX's default result format
            except Exception as exc:  # noqa: BLE001 - timed all the same
                say(f"   checkpoint {kind} raised: {clean(f'{type(exc).__name__}: {exc}')[:300]}")
                out["errored"] += len(exps)
                result = None
            out[f"{kind}_s"] = time.perf_counter() - t2
            out[f"{kind}_n"] = len(exps)
            for vres in (result.run_results.values() if result is not None else ()):
                for er in vres.results:
                    cfg, info = er.expectation_config, er.exception_info or {}
                    kw = cfg.kwargs
                    target = kw.get("column") or kw.get("column_A") or kw.get("column_list") or cfg.description
                    name = f"{cfg.type}({target})"
                    raised = info.get("raised_exception") or any(
                        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
                    if raised:
                        msgs = [info.get("exception_message")] + [v.get("exception_message") for v in info.values()
                                                                  if isinstance(v, dict)]
                        out["errored"] += 1
                        say(f"   ERRORED {name}: {clean(next((m for m in msgs if m), '?'))[:300]}")
                    elif not er.success:
                        out["failed"] += 1  # counts only: GX's default results carry sample values (phones)
            say(f"   {kind}: {out[f'{kind}_n']} expectations in {out[f'{kind}_s']:.1f}s")
        out["wall_s"] = setup + out["builtin_s"] + out["queries_s"]
        engine = ds.get_engine()
        with engine.connect() as conn:  # (not timed) what the whole-table batches held
            out["rows"] = {rel: int(conn.execute(text(f"SELECT COUNT(*) FROM {p['canon']}.{rel}")).scalar())
                           for rel in READ_RELATIONS}
        engine.dispose()
    say(f"   {out['expectations']} expectations ({out['builtin_n']} built-in, {out['queries_n']} rule queries): "
        f"{out['failed']} unsuccessful, {out['errored']} errored")
    return out
