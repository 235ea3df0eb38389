"""Production traffic while a verification runs: the e-bill system keeps issuing bills and the
upload/notice jobs keep updating old ones. A good backup must still verify PASSED under it (the
comparison is "equal to production as of the backup"), so the tests run the flow beside this.

Issuing follows the vendor's own order in one transaction: take the next number from an issuing
point's stock segment (t_bill_stock.cur_no), write the bill and its items copied from that
point's latest bill; then the upload job sends the oldest bill this generator issued and has not
uploaded yet to the finance platform (upload_flag 0 -> 1); then the notice job re-sends the oldest
failed e-mail/SMS notice of an old bill (notice_flag 2 -> 1; once none is left, a notice re-sent on
request: the oldest delivered one gets a new notice_datetime), a change to a row issued long before
the backup.

With log_calls, each of these calls an interface and, as the e-bill system does, logs it in
t_interface_log (HIS asking to issue, the signing server, the finance platform, the SMS gateway): a
sandbox at work has interface traffic in the inspection's window, as a hospital at work has. Off by
default: at the verification tests' pace (five bills a second) the logged calls would outnumber a
day's and swamp the windows of the interface checks that follow.
"""
from __future__ import annotations

import threading

import psycopg

_NEXT_SEGMENT = """
SELECT s.id, s.place_code, s.bill_batch_code, s.cur_no::bigint AS cur, s.end_no::bigint AS last
FROM {schema}.t_bill_stock s
WHERE s.stock_state = '1' AND s.cur_no::bigint <= s.end_no::bigint
  AND EXISTS (SELECT 1 FROM {schema}.t_ebill_main m WHERE m.place_code = s.place_code
              AND m.bill_batch_code = s.bill_batch_code AND m.red_flag = '0')
ORDER BY random() LIMIT 1 FOR UPDATE OF s
"""
_ISSUE = """
WITH tmpl AS (
  -- a well-formed bill (signed, amounts adding up): a copied planted defect would change what
  -- the data-quality tests count
  SELECT * FROM {schema}.t_ebill_main WHERE place_code = %(place)s AND bill_batch_code = %(code)s AND red_flag = '0'
    AND sign_flag = '1' AND total_amt = fund_pay + other_fund_pay + account_pay + own_pay
  ORDER BY ivc_datetime DESC LIMIT 1),
new_id AS (SELECT COALESCE(MAX(id), 0) + 1 AS id FROM {schema}.t_ebill_main),
bill AS (
  INSERT INTO {schema}.t_ebill_main
  SELECT n.id, t.bill_batch_code, lpad(%(number)s::text, 10, '0'), substr(md5(n.id::text), 1, 6), '0', NULL, NULL,
         'TRF' || n.id, t.bus_type, localtimestamp, localtimestamp, t.place_code, t.payer, t.payer_type, t.payer_id_card,
         t.payer_tel, t.total_amt, t.fund_pay, t.other_fund_pay, t.account_pay, t.own_pay, t.med_care_type_code,
         t.patient_id, t.outpatient_no, t.hospital_no, t.in_hospital_date, t.out_hospital_date, '1', '1', '0', NULL,
         '0', '0', NULL, localtimestamp
  FROM tmpl t, new_id n
  RETURNING id, ivc_datetime)
INSERT INTO {schema}.t_ebill_detail
SELECT b.id, b.ivc_datetime, d.sort_no, d.charge_code, d.item_code, d.item_name, d.unit, d.std, d.number, d.amt,
       d.med_ins_type
FROM bill b, tmpl t JOIN {schema}.t_ebill_detail d ON d.main_id = t.id AND d.ivc_datetime = t.ivc_datetime
"""
_USE_NUMBER = """
UPDATE {schema}.t_bill_stock SET cur_no = lpad((cur_no::bigint + 1)::text, 10, '0'),
       stock_state = CASE WHEN cur_no::bigint + 1 > end_no::bigint THEN '2' ELSE stock_state END
WHERE id = %(seg)s
"""
_NOTICE_SENT = """
UPDATE {schema}.t_ebill_main SET notice_flag = '1', notice_datetime = localtimestamp
WHERE (id, ivc_datetime) = (SELECT id, ivc_datetime FROM {schema}.t_ebill_main WHERE notice_flag IN ('2', '1')
                            ORDER BY notice_flag DESC, ivc_datetime LIMIT 1)
RETURNING bus_no, place_code
"""


# Only bills this generator issued (bus_no TRF…): a planted pending upload (DQ18) stays pending.
_UPLOAD = """
UPDATE {schema}.t_ebill_main SET upload_flag = '1', upload_datetime = localtimestamp
WHERE (id, ivc_datetime) = (SELECT id, ivc_datetime FROM {schema}.t_ebill_main
                            WHERE bus_no LIKE 'TRF%' AND upload_flag = '0' ORDER BY ivc_datetime LIMIT 1)
RETURNING bus_no, place_code
"""
_LOG_CALLS = """
INSERT INTO {schema}.t_interface_log (log_id, interface_type, method_name, bus_no, place_code, req_datetime,
                                      cost_ms, result_code, result_msg)
SELECT m.id + c.n, c.itype, c.method, %(bus)s, %(place)s, localtimestamp, c.ms, 'S0000', '成功'
FROM (SELECT COALESCE(MAX(log_id), 0) AS id FROM {schema}.t_interface_log) m,
     (SELECT * FROM unnest(%(types)s::text[], %(methods)s::text[], %(ms)s::int[]) WITH ORDINALITY
        AS c(itype, method, ms, n)) c
"""
# A typical cost of each call (ms), as the generated history has them (sandbox/bills.py _MEDIAN_MS).
_CALL_MS = {"HIS": 180, "SIGN": 70, "FINANCE": 240, "DELIVERY": 120}


class Traffic:
    """Issue a bill and update an old one every `interval_s` seconds on a thread, until stopped."""

    def __init__(self, conninfo: str, schema: str = "ebill", interval_s: float = 0.2, log_calls: bool = False):
        self.conninfo, self.schema, self.interval_s, self.log_calls = conninfo, schema, interval_s, log_calls
        self.issued = self.updated = self.uploaded = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-traffic", daemon=True)

    def _sql(self, text: str) -> str:
        return text.format(schema=self.schema)

    def _log(self, conn: psycopg.Connection, calls: list[tuple[str, str]], bus: str | None, place: str | None) -> None:
        """Log successful calls [(interface_type, method)] at the current time, in this transaction."""
        if not self.log_calls:
            return
        # Ids above the highest, as sandbox/scenarios_db.py takes them: the same lock keeps the two apart.
        conn.execute(self._sql("LOCK TABLE {schema}.t_interface_log IN SHARE ROW EXCLUSIVE MODE"))
        conn.execute(self._sql(_LOG_CALLS), {"bus": bus, "place": place, "types": [t for t, _ in calls],
                                             "methods": [m for _, m in calls], "ms": [_CALL_MS[t] for t, _ in calls]})

    def issue_one(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            seg = conn.execute(self._sql(_NEXT_SEGMENT)).fetchone()
            if seg is not None:
                seg_id, place, code, cur, _ = seg
                items = conn.execute(self._sql(_ISSUE), {"place": place, "code": code, "number": cur}).rowcount
                if items:  # no well-formed bill to copy at that point: nothing issued, no number used
                    conn.execute(self._sql(_USE_NUMBER), {"seg": seg_id})
                    bus = conn.execute(self._sql("SELECT 'TRF' || MAX(id) FROM {schema}.t_ebill_main")).fetchone()[0]
                    self._log(conn, [("HIS", "invEBillOutpatient"), ("SIGN", "sign")], bus, place)
                    self.issued += 1
        with conn.transaction():
            sent = conn.execute(self._sql(_UPLOAD)).fetchone()
            if sent is not None:
                self._log(conn, [("FINANCE", "upload")], *sent)
                self.uploaded += 1
        with conn.transaction():
            sent = conn.execute(self._sql(_NOTICE_SENT)).fetchone()
            if sent is not None:
                self._log(conn, [("DELIVERY", "notice")], *sent)
                self.updated += 1

    def _loop(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True, application_name="sandbox-traffic") as conn:
                while not self._stop.is_set():
                    self.issue_one(conn)
                    self._stop.wait(self.interval_s)
        except BaseException as exc:  # noqa: BLE001 - reported by stop(), so a broken generator fails the test
            self.error = exc

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        if self.error is not None:
            raise RuntimeError(f"sandbox traffic failed after {self.issued} bills: {self.error}") from self.error
