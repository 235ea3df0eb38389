"""The sandbox application's test bill (迁移冒烟测试): what its `POST /test-bill/issue` and
`POST /test-bill/red-flush` do in the database its datasource names.

Issue: as the platform issues an outpatient bill for a HIS settlement, in one transaction: the HIS
settlement (the sandbox plays HIS), the next number of an active outpatient segment of this year's
bill code, the bill (signed, supervised at once), its one item, the interface calls logged. Payer
and item say 迁移冒烟测试 and the business numbers start with SMK, so nobody takes it for a patient's.
Amount 0.01 yuan, 全自费, paid in cash.

Red-flush (冲红) as docs/ebill-reference-schema.md represents it: a refund settlement for the blue
bill's business number, a red bill with its own number from the same point's stock (red_flag 1,
rel_bill_* the blue bill, every amount and item quantity negated), and the blue bill's state
FLUSHED (bill_state 2). Only a test bill is red-flushed here. Both bills then keep DQ01-DQ22: unique
stock numbers (DQ04, DQ21, DQ22), amounts adding up (DQ06-DQ09), one red bill per flushed blue bill
(DQ11, DQ12), settlements for both (DQ19), signed and supervised (DQ17, DQ18).
"""
from __future__ import annotations

import psycopg

from sandbox.traffic import _CALL_MS, _LOG_CALLS

MARK = "迁移冒烟测试"
S = "ebill"

# the bill tables hold their ids as MAX + 1 (the vendor's way, and sandbox.traffic's): no other
# issue may take an id or a number between ours and our commit
_LOCK = f"LOCK TABLE {S}.t_ebill_main, {S}.t_his_settle IN SHARE ROW EXCLUSIVE MODE"
_SEGMENT = f"""
SELECT s.id, s.place_code, s.bill_batch_code, s.cur_no FROM {S}.t_bill_stock s
JOIN {S}.t_bill_place p ON p.place_code = s.place_code
WHERE s.stock_state = '1' AND s.cur_no::bigint <= s.end_no::bigint AND p.place_type = '1' AND p.is_valid = 'Y'
  AND substr(s.bill_batch_code, 5, 2) = '01' AND right(s.bill_batch_code, 2) = to_char(localtimestamp, 'YY')
  AND (%(place)s::text IS NULL OR s.place_code = %(place)s)
ORDER BY s.place_code, s.id LIMIT 1 FOR UPDATE OF s
"""
_USE_NUMBER = f"""
UPDATE {S}.t_bill_stock SET cur_no = lpad((cur_no::bigint + 1)::text, 10, '0'),
       stock_state = CASE WHEN cur_no::bigint + 1 > end_no::bigint THEN '2' ELSE stock_state END
WHERE id = %(seg)s
"""
_SETTLE = f"""
INSERT INTO {S}.t_his_settle (settle_id, his_serial_no, visit_type, pat_id, settle_datetime, place_code, settle_amt,
                              is_refund, ori_his_serial_no)
SELECT COALESCE(MAX(settle_id), 0) + 1, %(bus)s::text, 'O', 'SMOKE-TEST', %(at)s::timestamp, %(place)s::text,
       %(amt)s::numeric, %(refund)s::text, %(orig)s::text
FROM {S}.t_his_settle
"""
_BILL = f"""
INSERT INTO {S}.t_ebill_main (id, bill_batch_code, bill_number, random_code, red_flag, rel_bill_batch_code,
    rel_bill_number, bus_no, bus_type, bus_datetime, ivc_datetime, place_code, payer, payer_type, payer_id_card,
    payer_tel, total_amt, fund_pay, other_fund_pay, account_pay, own_pay, med_care_type_code, patient_id,
    outpatient_no, hospital_no, in_hospital_date, out_hospital_date, bill_state, sign_flag, upload_flag,
    upload_datetime, archive_flag, notice_flag, notice_datetime)
SELECT n.id, %(code)s::text, %(no)s::text, substr(md5(n.id::text || %(bus)s::text), 1, 6), %(red)s::text,
    %(rel_code)s::text, %(rel_no)s::text, %(bus)s::text, '02', %(at)s::timestamp, localtimestamp, %(place)s::text,
    %(mark)s::text, '2', NULL, NULL, %(amt)s::numeric, 0, 0, 0, %(amt)s::numeric, '07', 'SMOKE-TEST',
    %(bus)s::text, NULL, NULL, NULL, '1', '1', '1', localtimestamp, '0', '9', NULL
FROM (SELECT COALESCE(MAX(id), 0) + 1 AS id FROM {S}.t_ebill_main) n
RETURNING id, bill_batch_code, bill_number, ivc_datetime, bus_no, total_amt, red_flag
"""
_ITEM = f"""
INSERT INTO {S}.t_ebill_detail (main_id, ivc_datetime, sort_no, charge_code, item_code, item_name, unit, std, number,
                                amt, med_ins_type)
VALUES (%(id)s, %(at)s, 1, '14', 'SMOKE01', %(mark)s, '次', 0.01, %(qty)s::numeric, %(amt)s::numeric, '3')
"""


def _number(conn: psycopg.Connection, place: str | None) -> tuple[str, str, str]:
    seg = conn.execute(_SEGMENT, {"place": place}).fetchone()
    if seg is None:
        raise LookupError(f"no active outpatient segment of this year's bill code{' at ' + place if place else ''}")
    conn.execute(_USE_NUMBER, {"seg": seg[0]})
    return seg[1], seg[2], seg[3]


def _write(conn: psycopg.Connection, *, bus: str, place: str, code: str, no: str, amt: str, refund: bool,
           orig: tuple[str, str, str] | None) -> dict:
    """The settlement, the bill, its item and the logged calls of one issue (blue) or red-flush (red)."""
    at = conn.execute("SELECT localtimestamp - interval '1 second'").fetchone()[0]
    conn.execute(_SETTLE, {"bus": bus, "at": at, "place": place, "amt": amt, "refund": "1" if refund else "0",
                           "orig": orig[2] if orig else None})
    row = conn.execute(_BILL, {"code": code, "no": no, "bus": bus, "red": "1" if refund else "0", "at": at,
                               "rel_code": orig[0] if orig else None, "rel_no": orig[1] if orig else None,
                               "place": place, "mark": MARK, "amt": amt}).fetchone()
    conn.execute(_ITEM, {"id": row[0], "at": row[3], "mark": MARK, "qty": "-1" if refund else "1", "amt": amt})
    calls = [("HIS", "writeOffEBill" if refund else "invEBillOutpatient"), ("SIGN", "sign")]
    conn.execute(f"LOCK TABLE {S}.t_interface_log IN SHARE ROW EXCLUSIVE MODE")
    conn.execute(_LOG_CALLS.format(schema=S), {"bus": bus, "place": place, "types": [t for t, _ in calls],
                                               "methods": [m for _, m in calls], "ms": [_CALL_MS[t] for t, _ in calls]})
    return {"bill_id": row[0], "bill_code": row[1], "bill_no": row[2], "issue_time": row[3].isoformat(sep=" "),
            "bus_no": row[4], "total_amt": str(row[5]), "red_flag": row[6], "payer": MARK}


def issue(conninfo: str) -> dict:
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute(_LOCK)
        place, code, no = _number(conn, None)
        bus = conn.execute("SELECT 'SMK' || to_char(localtimestamp, 'YYYYMMDDHH24MISS') || "
                           f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {S}.t_ebill_main)").fetchone()[0]
        return _write(conn, bus=bus, place=place, code=code, no=no, amt="0.01", refund=False, orig=None)


def red_flush(conninfo: str, bill_code: str, bill_no: str) -> dict:
    """Red-flush the test bill (bill_code, bill_no); LookupError if it is not a test bill still ISSUED."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute(_LOCK)
        blue = conn.execute(f"SELECT id, ivc_datetime, bus_no, place_code, total_amt FROM {S}.t_ebill_main "
                            "WHERE bill_batch_code = %s AND bill_number = %s AND red_flag = '0' AND bill_state = '1' "
                            "AND payer = %s FOR UPDATE", (bill_code, bill_no, MARK)).fetchone()
        if blue is None:
            raise LookupError(f"{bill_code}-{bill_no} is not an issued {MARK} bill")
        place, code, no = _number(conn, blue[3])
        red = _write(conn, bus=blue[2].replace("SMK", "SMKR", 1), place=place, code=code, no=no, amt=str(-blue[4]),
                     refund=True, orig=(bill_code, bill_no, blue[2]))
        conn.execute(f"UPDATE {S}.t_ebill_main SET bill_state = '2' WHERE id = %s AND ivc_datetime = %s",
                     (blue[0], blue[1]))
        return {**red, "orig_bill_code": bill_code, "orig_bill_no": bill_no}
