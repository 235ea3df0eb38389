"""One bill at a time: a HIS settlement, the e-bill issued for it, its items and its interface calls.

Amounts are integer cents throughout, so that item lines, totals and payment splits add up exactly
(the data-quality rules check them to the cent); they become numeric text only when written.
"""
from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

from sandbox.ebill_catalog import COMPANIES, ITEMS, PLACES, REFUND_PLACE, VISITS, bill_code, fake_patient
from sandbox.loader import Rows, line

FAIL_RATE = 0.003
_SUCCESS = ("S0000", "成功")
_FAILURES = {
    "HIS": ("E1001", "请求参数校验失败: 收费项目编码不存在"),
    "SIGN": ("E2001", "签名服务器连接超时"),
    "FINANCE": ("E3001", "财政平台返回: 系统繁忙, 请稍后重试"),
    "DELIVERY": ("E4001", "短信网关发送失败"),
}
# median latency (ms) of each interface; lognormal spread
_MEDIAN_MS = {"HIS": 180, "SIGN": 70, "FINANCE": 240, "DELIVERY": 120}
_DAY_WINDOW = {"O": (7.5, 17.5), "R": (7.0, 17.5), "E": (0.0, 24.0), "I": (8.5, 17.0), "C": (7.5, 12.0)}
_CODE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _yuan(cents: int) -> str:
    return "%.2f" % (cents / 100)


def _ts(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(sep=" ", timespec="milliseconds")


class Bill:
    __slots__ = ("id", "code", "no", "check_code", "red", "rel_code", "rel_no", "bus_no", "bus_type", "bus_time",
                 "req_time", "his_ms", "issue_time", "place", "payer", "payer_type", "id_card", "tel", "total", "fund",
                 "other", "account", "cash", "med_care_type", "patient_id", "visit_no", "hospital_no", "in_date",
                 "out_date", "sign_flag", "items", "visit_type", "refund_at", "orig_bus_no",
                 "no_text", "state_flag", "upload_override", "settle_total")

    def __init__(self) -> None:
        # What emit writes instead of the derived value; set only by planted defects (sandbox/defects.py).
        self.no_text = self.state_flag = self.upload_override = self.settle_total = None

    def code_no(self, no: int) -> None:
        self.no = no

    @property
    def bill_no(self) -> str:
        """The bill number as written: 10 digits, unless a planted defect typed it otherwise."""
        return self.no_text if self.no_text is not None else f"{self.no:010d}"


class BillFactory:
    def __init__(self, rng: random.Random, expected_bills: int, cutoff: datetime):
        self.rng, self.cutoff = rng, cutoff
        # no interface failures in the last two days, so that a check of any busy window of the
        # last day sees a healthy system (tests stage failures themselves: sandbox/scenarios_db.py)
        self.quiet_after = cutoff - timedelta(days=2)
        self.pool = max(2000, min(100_000, expected_bills // 3))
        self.patients: dict[int, tuple] = {}
        self.bill_id = self.settle_id = self.log_id = self.seq = 0
        self.visit_types = list(VISITS)
        self.visit_cum = []
        acc = 0.0
        for v in self.visit_types:
            acc += VISITS[v][0]
            self.visit_cum.append(acc)
        self.place_choice = {v: ([p for p, _ in VISITS[v][3]], [w for _, w in VISITS[v][3]]) for v in VISITS}

    # ------------------------------------------------------------------ building bills
    def day_of_bills(self, day: date, n: int, refund_rate: float) -> list[Bill]:
        r = self.rng
        midnight = datetime.combine(day, datetime.min.time())
        visits = r.choices(self.visit_types, cum_weights=self.visit_cum, k=n)
        times = sorted((r.uniform(*_DAY_WINDOW[v]) * 3600, v) for v in visits)
        out = []
        for secs, v in times:
            bill = self._blue(v, midnight + timedelta(seconds=secs), refund_rate)
            if bill.issue_time <= self.cutoff:
                out.append(bill)
        return out

    def _patient(self) -> tuple:
        idx = self.rng.randrange(self.pool)
        p = self.patients.get(idx)
        if p is None:
            p = self.patients[idx] = fake_patient(self.rng, idx)
        return p

    def _blue(self, v: str, bus_time: datetime, refund_rate: float) -> Bill:
        r = self.rng
        _, bus_type, prefix, _ = VISITS[v]
        places, weights = self.place_choice[v]
        b = Bill()
        self.bill_id += 1
        self.seq += 1
        b.id, b.visit_type, b.bus_type, b.bus_time = self.bill_id, v, bus_type, bus_time
        if v == "O" and r.random() < 0.05:
            b.bus_type = "04"  # 门特
        b.place = places[0] if len(places) == 1 else r.choices(places, weights)[0]
        pid, name, id_card, tel, mct = self._patient()
        b.patient_id, b.med_care_type = pid, mct
        if v == "C" and r.random() < 0.3:  # 团体体检: the employer pays
            b.payer, b.payer_type, b.id_card, b.tel = r.choice(COMPANIES), "2", None, None
        else:
            b.payer, b.payer_type, b.id_card, b.tel = name, "1", id_card, tel
        b.bus_no = f"{prefix}{bus_time:%Y%m%d}{self.seq:08d}"
        los = r.randint(1, 20) if v == "I" else 0
        b.items = self._items(v, los)
        b.total = sum(i[6] for i in b.items)
        b.fund, b.other, b.account, b.cash = self._split(b.total, mct, v)
        b.req_time = bus_time + timedelta(seconds=r.uniform(30, 600) if v == "I" else r.uniform(1, 30))
        b.his_ms = self._ms("HIS")
        b.issue_time = b.req_time + timedelta(milliseconds=b.his_ms)
        b.code = bill_code(v, b.issue_time.year)
        b.check_code = "".join(r.choices(_CODE36, k=6))
        b.red, b.rel_code, b.rel_no, b.orig_bus_no, b.sign_flag = "0", None, None, None, "1"
        if v == "I":
            b.out_date = bus_time.date()
            b.in_date = b.out_date - timedelta(days=los)
            b.hospital_no, b.visit_no = f"ZY{b.in_date:%Y}{self.seq % 1000000:06d}", None
        else:
            b.in_date = b.out_date = b.hospital_no = None
            b.visit_no = f"{bus_time:%y%m%d}{self.seq:07d}"
        b.refund_at = None
        if v != "I" and r.random() < refund_rate:
            at = b.issue_time + timedelta(seconds=r.uniform(600, 3 * 86400))
            if at + timedelta(minutes=2) < self.cutoff:
                b.refund_at = at
        return b

    def red_bill(self, blue: Bill) -> Bill:
        """The red bill (冲红) that reverses `blue`, for the refund settlement at blue.refund_at."""
        r = self.rng
        b = Bill()
        self.bill_id += 1
        self.seq += 1
        b.id, b.visit_type, b.bus_type, b.bus_time = self.bill_id, blue.visit_type, blue.bus_type, blue.refund_at
        b.place = REFUND_PLACE.get(blue.place, blue.place)
        for f in ("payer", "payer_type", "id_card", "tel", "med_care_type", "patient_id", "visit_no",
                  "hospital_no", "in_date", "out_date"):
            setattr(b, f, getattr(blue, f))
        b.bus_no = f"TF{blue.refund_at:%Y%m%d}{self.seq:08d}"
        b.orig_bus_no = blue.bus_no
        b.items = [(c, ic, nm, u, std, -q, -amt, cls) for c, ic, nm, u, std, q, amt, cls in blue.items]
        b.total, b.fund, b.other, b.account, b.cash = -blue.total, -blue.fund, -blue.other, -blue.account, -blue.cash
        b.req_time = blue.refund_at + timedelta(seconds=r.uniform(1, 30))
        b.his_ms = self._ms("HIS")
        b.issue_time = b.req_time + timedelta(milliseconds=b.his_ms)
        b.code = bill_code(b.visit_type, b.issue_time.year)
        b.check_code = "".join(r.choices(_CODE36, k=6))
        b.red, b.rel_code, b.rel_no, b.sign_flag, b.refund_at = "1", blue.code, blue.bill_no, "1", None
        return b

    def _items(self, v: str, los: int) -> list[tuple]:
        r = self.rng
        out: list[tuple] = []

        def add(cc: str, qty: int | None = None) -> None:
            code, name, unit, std, cls = r.choice(ITEMS[cc])
            q = qty if qty is not None else (r.randint(30, 300) if cc == "10" else r.randint(1, 3))
            out.append((cc, code, name, unit, std, q, (std * q + 50) // 100, cls))

        if v == "R":
            add(r.choice(("13", "12")), 1)
            if r.random() < 0.7:
                add("02", 1)
        elif v in "OE":
            add("02", 1)
            for _ in range(r.randint(0, 2)):
                add(r.choice(("03", "04", "04")))
            for _ in range(r.randint(0, 6)):
                add(r.choice(("09", "09", "11", "10")))
            if r.random() < 0.3:
                add("05")
            if r.random() < 0.2:
                add("08")
        elif v == "C":
            for _ in range(r.randint(3, 10)):
                add(r.choice(("03", "04", "04")), 1)
        else:  # inpatient: daily charges times the length of stay, then tests, drugs, materials
            for cc in ("01", "07", "02"):
                add(cc, los)
            for cc in ("03", "03", "04", "04", "04"):
                add(cc)
            for _ in range(r.randint(2, 5)):
                add(r.choice(("09", "09", "11", "10")))
            add("08", r.randint(2, 10))
            if r.random() < 0.3:
                add("06", 1)
        return out[:15]

    def _split(self, total: int, mct: str, v: str) -> tuple[int, int, int, int]:
        """(fund, other_fund, account, cash) in cents, adding up to total; 07 全自费 pays all in cash."""
        r = self.rng
        fund = other = account = 0
        if total <= 0 or mct == "07" or v == "C":  # check-ups are not covered by insurance
            pass
        elif mct == "06":
            fund = total
        elif mct == "01":
            fund = int(total * (r.uniform(0.6, 0.85) if v == "I" else r.uniform(0.0, 0.5)))
            if v == "I":
                other = int((total - fund) * r.uniform(0.0, 0.1))
            account = int((total - fund - other) * r.uniform(0.3, 1.0))
        elif mct in ("02", "03", "90"):
            fund = int(total * (r.uniform(0.5, 0.75) if v == "I" else r.uniform(0.0, 0.5)))
            if v == "I":
                other = int((total - fund) * r.uniform(0.0, 0.1))
        elif mct == "04":
            fund = int(total * r.uniform(0.7, 0.9))
            other = int((total - fund) * r.uniform(0.5, 0.9))
        elif mct == "05":
            other = int(total * r.uniform(0.3, 0.8))
        else:
            fund = int(total * r.uniform(0.0, 0.3))
        return fund, other, account, total - fund - other - account

    def _ms(self, target: str) -> int:
        return max(5, int(self.rng.lognormvariate(math.log(_MEDIAN_MS[target]), 0.35)))

    # ------------------------------------------------------------------ writing rows
    def emit(self, b: Bill, rows: Rows, counts: dict) -> None:
        r, cutoff = self.rng, self.cutoff
        place, bus = b.place, b.bus_no
        logs = rows.log
        # HIS asks the platform to issue; the platform signs while issuing
        self._call(logs, "HIS", "writeOffEBill" if b.red == "1" else
                   ("invEBillHospitalized" if b.visit_type == "I" else "invEBillOutpatient"), bus, place, b.req_time, b.his_ms)
        self._call(logs, "SIGN", "sign", bus, place, b.req_time + timedelta(milliseconds=20), self._ms("SIGN"))
        upload_t = b.issue_time + timedelta(seconds=r.uniform(5, 600))
        archive_t = upload_t + timedelta(seconds=r.uniform(60, 1800))
        upload_flag = archive_flag = "0"
        # a planted pending upload (DQ18) makes the calls into a discarded list: the random draws and
        # log ids stay those of the clean data, and no upload or archive is logged for the bill
        finance_logs = logs if b.upload_override is None else []
        if upload_t <= cutoff:
            upload_flag = "1"
            self._call(finance_logs, "FINANCE", "upload", bus, place, upload_t, self._ms("FINANCE"))
            if archive_t <= cutoff:
                archive_flag = "1"
                self._call(finance_logs, "FINANCE", "archive", bus, place, archive_t, self._ms("FINANCE"))
        else:
            upload_t = None
        if b.upload_override is not None:
            upload_flag, upload_t, archive_flag = b.upload_override, None, "0"
        notice_t = b.issue_time + timedelta(seconds=r.uniform(1, 10))
        if not b.tel:
            notice_flag, notice_t = "9", None
        elif notice_t > cutoff:
            notice_flag, notice_t = "0", None
        elif notice_t < self.quiet_after and r.random() < FAIL_RATE:
            notice_flag = "2"  # the SMS gateway failed; delivery is not retried automatically
            self._log(logs, "DELIVERY", "notice", bus, place, notice_t, self._ms("DELIVERY"), _FAILURES["DELIVERY"])
        else:
            notice_flag = "1"
            self._call(logs, "DELIVERY", "notice", bus, place, notice_t, self._ms("DELIVERY"))
        issue = _ts(b.issue_time)
        rows.main.append(line((
            b.id, b.code, b.bill_no, b.check_code, b.red, b.rel_code, b.rel_no, bus, b.bus_type, _ts(b.bus_time),
            issue, place, b.payer, b.payer_type, b.id_card, b.tel, _yuan(b.total), _yuan(b.fund), _yuan(b.other),
            _yuan(b.account), _yuan(b.cash), b.med_care_type, b.patient_id, b.visit_no, b.hospital_no, b.in_date,
            b.out_date, b.state_flag or ("2" if b.refund_at is not None else "1"), b.sign_flag, upload_flag,
            _ts(upload_t), archive_flag, notice_flag, _ts(notice_t))))
        detail = rows.detail
        for n, (cc, code, name, unit, std, q, amt, cls) in enumerate(b.items, 1):
            detail.append(f"{b.id}\t{issue}\t{n}\t{cc}\t{code}\t{name}\t{unit}\t{std // 10000}.{std % 10000:04d}\t"
                          f"{q}.00\t{_yuan(amt)}\t{cls}")
        self.settle_id += 1
        rows.settle.append(line((self.settle_id, bus, b.visit_type, b.patient_id, _ts(b.bus_time), place,
                                 _yuan(b.total if b.settle_total is None else b.settle_total),
                                 "1" if b.red == "1" else "0", b.orig_bus_no)))
        counts["bills"] += 1
        counts["items"] += len(b.items)
        counts["settlements"] += 1
        counts["call_logs"] = self.log_id

    def _call(self, logs: list, target: str, method: str, bus: str, place: str, t: datetime, ms: int) -> None:
        """A successful call, preceded now and then by a failed attempt that was retried."""
        if t < self.quiet_after and self.rng.random() < FAIL_RATE:
            self._log(logs, target, method, bus, place, t - timedelta(seconds=self.rng.uniform(2, 20)),
                      self._ms(target) * 5, _FAILURES[target])
        self._log(logs, target, method, bus, place, t, ms, _SUCCESS)

    def _log(self, logs: list, target: str, method: str, bus: str, place: str, t: datetime, ms: int,
             result: tuple[str, str]) -> None:
        self.log_id += 1
        logs.append(f"{self.log_id}\t{target}\t{method}\t{bus}\t{place}\t{_ts(t)}\t{ms}\t{result[0]}\t{result[1]}")

    def place_rows(self) -> list[str]:
        return [line((p.code, p.name, p.vendor_type, p.dept, "Y" if p.active else "N")) for p in PLACES]

