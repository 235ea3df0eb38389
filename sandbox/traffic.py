"""Production traffic while a verification runs: the e-bill system keeps issuing bills and the
upload/notice jobs keep updating old ones. A good backup must still verify PASSED under it (the
comparison is "equal to production as of the backup"), so the tests run the flow beside this.

Issuing follows the vendor's own order in one transaction: take the next number from an issuing
point's stock segment (t_bill_stock.cur_no), write the bill and its items copied from that
point's latest bill; then the notice job re-sends the oldest failed e-mail/SMS notice of an old
bill (notice_flag 2 -> 1; once none is left, a notice re-sent on request: the oldest delivered one
gets a new notice_datetime), a change to a row issued long before the backup.
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
"""


class Traffic:
    """Issue a bill and update an old one every `interval_s` seconds on a thread, until stopped."""

    def __init__(self, conninfo: str, schema: str = "ebill", interval_s: float = 0.2):
        self.conninfo, self.schema, self.interval_s = conninfo, schema, interval_s
        self.issued = self.updated = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-traffic", daemon=True)

    def _sql(self, text: str) -> str:
        return text.format(schema=self.schema)

    def issue_one(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            seg = conn.execute(self._sql(_NEXT_SEGMENT)).fetchone()
            if seg is not None:
                seg_id, place, code, cur, _ = seg
                items = conn.execute(self._sql(_ISSUE), {"place": place, "code": code, "number": cur}).rowcount
                if items:  # no well-formed bill to copy at that point: nothing issued, no number used
                    conn.execute(self._sql(_USE_NUMBER), {"seg": seg_id})
                    self.issued += 1
        with conn.transaction():
            self.updated += conn.execute(self._sql(_NOTICE_SENT)).rowcount

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
