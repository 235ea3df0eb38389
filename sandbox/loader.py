"""COPY of generated rows into the vendor tables, on a second thread.

The generator fills text buffers (PostgreSQL COPY text format) while this thread streams the
previous chunk to the server, so Python's generation and the server's parsing overlap on two cores.
Each chunk is committed on its own: memory stays bounded however large the data.
"""
from __future__ import annotations

import queue
import threading

NULL = "\\N"

COLUMNS = {
    "t_bill_place": "place_code, place_name, place_type, dept_name, is_valid",
    "t_ebill_main": (
        "id, bill_batch_code, bill_number, random_code, red_flag, rel_bill_batch_code, rel_bill_number, bus_no, "
        "bus_type, bus_datetime, ivc_datetime, place_code, payer, payer_type, payer_id_card, payer_tel, total_amt, "
        "fund_pay, other_fund_pay, account_pay, own_pay, med_care_type_code, patient_id, outpatient_no, hospital_no, "
        "in_hospital_date, out_hospital_date, bill_state, sign_flag, upload_flag, upload_datetime, archive_flag, "
        "notice_flag, notice_datetime"
    ),
    "t_ebill_detail": "main_id, ivc_datetime, sort_no, charge_code, item_code, item_name, unit, std, number, amt, med_ins_type",
    "t_his_settle": "settle_id, his_serial_no, visit_type, pat_id, settle_datetime, place_code, settle_amt, is_refund, ori_his_serial_no",
    "t_interface_log": "log_id, interface_type, method_name, bus_no, place_code, req_datetime, cost_ms, result_code, result_msg",
    "t_bill_stock": "id, place_code, bill_batch_code, start_no, end_no, cur_no, warn_num, stock_state, receive_date",
}


def line(values) -> str:
    """One COPY text line; the generator writes no tabs, newlines or backslashes into values."""
    return "\t".join(NULL if v is None else str(v) for v in values)


class Rows:
    """Lines waiting to be copied, per vendor table."""

    def __init__(self) -> None:
        self.main: list[str] = []
        self.detail: list[str] = []
        self.settle: list[str] = []
        self.log: list[str] = []

    @property
    def bills(self) -> int:
        return len(self.main)

    def take(self) -> dict[str, list[str]]:
        out = {"t_ebill_main": self.main, "t_ebill_detail": self.detail, "t_his_settle": self.settle,
               "t_interface_log": self.log}
        self.__init__()
        return out


class CopyLoader:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ebill-copy", daemon=True)
        self._thread.start()

    def put(self, chunk: dict[str, list[str]]) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        if self._thread.is_alive():
            while True:
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"bulk load into {self.schema} failed: {self._error}") from self._error

    def _run(self) -> None:
        try:
            import psycopg

            with psycopg.connect(self.dsn) as conn:
                while (chunk := self._queue.get()) is not None:
                    with conn.cursor() as cur:
                        for table, lines in chunk.items():
                            if not lines:
                                continue
                            with cur.copy(f"COPY {self.schema}.{table} ({COLUMNS[table]}) FROM STDIN") as copy:
                                copy.write("\n".join(lines) + "\n")
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - handed to the generating thread
            self._error = exc
            # drain so that a producer blocked on put() wakes up and sees the error
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
