"""Phase 8, smoke, the test bill (if the site configures `migration.target.smoke_test_bill`): the
application on the new servers issues a test bill and red-flushes it (冲红), then both bills are read
back from the target database with the verification account: the whole write path of the new
system (application -> datasource -> new database) has worked once before the hospital relies on it.

This writes to the new database (two bills marked by the application as a test, amount as small as
the platform allows); it runs after the cut-over, under approval #3 (cutover), which the plan says.
The record names the bills by business key (bill code + number) and times; the payer is masked.
"""
from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tasks.core.masking import mask_name, mask_row, mask_text
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from tasks.migration import db
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

PURPOSE = "迁移冒烟测试"


def _masked(answer: dict) -> dict:
    """The application's answer as recorded: personal fields masked (a vendor may echo the payer)."""
    return {k: mask_name(str(v)) if k in ("payer", "payer_name") and v else v for k, v in mask_row(answer).items()}


def _post(ph: PhaseRun, client: httpx.Client, host: str, url: str, body: dict) -> dict:
    began = time.monotonic()
    try:
        r = client.post(url, json=body)
    except httpx.HTTPError as exc:
        ph.note(host, f"POST {url}", f"{type(exc).__name__}: {exc}", 1, time.monotonic() - began)
        raise RuntimeError(f"POST {url}: {type(exc).__name__}") from exc
    try:
        answer = r.json() if r.is_success else {}
    except ValueError:
        answer = {}
    shown = json.dumps(_masked(answer), ensure_ascii=False) if answer else r.text[:1000]
    ph.note(host, f"POST {url}", shown, 0 if r.is_success else r.status_code, time.monotonic() - began)
    if not (answer.get("bill_code") and answer.get("bill_no")):
        raise RuntimeError(f"POST {url}: HTTP {r.status_code}, no bill_code/bill_no in the answer: {mask_text(r.text[:200])}")
    return answer


def read_back(m: Migration, blue: dict, red: dict) -> dict[str, dict]:
    """The two bills as the target database has them, by business key (verification account)."""
    cfg = m.cfg
    params = {"code": blue["bill_code"], "no": blue["bill_no"], "red_code": red["bill_code"], "red_no": red["bill_no"]}
    with db.side_session(cfg, cfg.target, snapshot=False) as fetch:
        rows = fetch(db.statement(cfg.target.engine, "test_bills", cfg.target.schema, params))
    return {f"{r['bill_code']}-{r['bill_no']}": r for r in rows}


def judge(blue: dict, red: dict, rows: dict[str, dict]) -> list[str]:
    """What is wrong with the pair as read back ([] = the blue bill FLUSHED, its one red bill linked
    to it with the negated amount, as docs/ebill-reference-schema.md represents a red-flush)."""
    b, r = rows.get(f"{blue['bill_code']}-{blue['bill_no']}"), rows.get(f"{red['bill_code']}-{red['bill_no']}")
    problems = [f"目标库中没有{kind} {x['bill_code']}-{x['bill_no']}" for kind, x, row in
                (("测试蓝票", blue, b), ("红票", red, r)) if row is None]
    if b is not None and (str(b["red_flag"]) != "0" or str(b["bill_state"]) != "2"):
        problems.append(f"蓝票状态 red_flag={b['red_flag']} bill_state={b['bill_state']}（应为 0 / 2 已冲红）")
    if r is not None and b is not None:
        if str(r["red_flag"]) != "1" or (r["orig_code"], r["orig_no"]) != (b["bill_code"], b["bill_no"]):
            problems.append(f"红票未指向原蓝票（red_flag={r['red_flag']}，原票 {r['orig_code']}-{r['orig_no']}）")
        if float(r["total_amt"]) != -float(b["total_amt"]):
            problems.append(f"红票金额 {r['total_amt']} 不等于蓝票金额 {b['total_amt']} 的相反数")
    return problems


def _fact(answer: dict, row: dict | None) -> dict[str, Any]:
    return {"bill_code": answer["bill_code"], "bill_no": answer["bill_no"],
            "issued": str(row["issued"]) if row else answer.get("issue_time"),
            "amount": str(row["total_amt"]) if row else answer.get("total_amt"),
            "payer": mask_name(str(row["payer_name"])) if row and row.get("payer_name") else None}


def issue_and_flush(m: Migration, ph: PhaseRun) -> None:
    tb, host = m.cfg.target.smoke_test_bill, m.cfg.target.app_host
    if tb is None:
        return
    try:
        with httpx.Client(timeout=tb.timeout_s, trust_env=False, follow_redirects=False) as client:
            blue = _post(ph, client, host, tb.issue_url, {"purpose": PURPOSE, "run_id": m.run_id})
            red = _post(ph, client, host, tb.red_flush_url, {"bill_code": blue["bill_code"], "bill_no": blue["bill_no"],
                                                             "purpose": PURPOSE, "run_id": m.run_id})
        rows = read_back(m, blue, red)
    except Exception as exc:  # noqa: BLE001 - the record says which call failed
        ph.check("测试票据开具与冲红", Status.FAIL, f"{type(exc).__name__}: {exc}", host=host,
                 code=Code.MIGRATION_TEST_BILL_FAILED)
        return
    problems = judge(blue, red, rows)
    b = _fact(blue, rows.get(f"{blue['bill_code']}-{blue['bill_no']}"))
    r = _fact(red, rows.get(f"{red['bill_code']}-{red['bill_no']}"))
    ph.facts["smoke_test_bill"] = {"blue": b, "red": r}
    ph.check("测试票据开具与冲红", Status.OK if not problems else Status.FAIL,
             f"测试票据 {b['bill_code']}-{b['bill_no']}（开具 {b['issued']}，金额 {b['amount']} 元，交款人 {b['payer']}）"
             f"已冲红，红票 {r['bill_code']}-{r['bill_no']}（开具 {r['issued']}，金额 {r['amount']} 元）；"
             + ("两张票据均已从目标库读回，蓝票状态为已冲红" if not problems else "；".join(problems)),
             host=host, target=f"{b['bill_code']}-{b['bill_no']}", value=2 - sum("没有" in p for p in problems),
             unit="张已读回", threshold="2", code="" if not problems else Code.MIGRATION_TEST_BILL_FAILED)
