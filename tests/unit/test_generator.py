"""The sandbox generator, run in memory (no database): its data must satisfy every rule of
docs/ebill-reference-schema.md, look healthy at the cut-off, be reproducible from the seed, and
carry exactly the planted defects."""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from sandbox import defects as defect_rules
from sandbox.ebill_catalog import PLACES, daily_use_by_place, id_check_digit
from sandbox.generator import Generation
from sandbox.loader import COLUMNS

# A run that crosses a year boundary and ends in the afternoon of its last day.
END = date(2025, 1, 20)
NOW = datetime(2025, 1, 20, 15, 0)
PROVINCES = {*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66)}


DAYS, BPD = 45, 40


def run(seed=7, days=DAYS, bpd=BPD, defects=None):
    gen = Generation(seed, days, bpd, END, NOW, defects)
    tables: dict[str, list[dict]] = defaultdict(list)
    for chunk in gen.chunks():
        for table, lines in chunk.items():
            cols = [c.strip() for c in COLUMNS[table].split(",")]
            for ln in lines:
                vals = [None if v == "\\N" else v for v in ln.split("\t")]
                assert len(vals) == len(cols), (table, ln)
                tables[table].append(dict(zip(cols, vals)))
    return gen, tables


def ts(v):
    return datetime.fromisoformat(v)


@pytest.fixture(scope="module")
def clean():
    return run()


def test_sizes_and_mix(clean):
    gen, t = clean
    blue = [b for b in t["t_ebill_main"] if b["red_flag"] == "0"]
    red = [b for b in t["t_ebill_main"] if b["red_flag"] == "1"]
    # DAYS - 1 full days plus the last day up to 15:00
    assert (DAYS - 1) * BPD < len(blue) <= DAYS * BPD
    assert 0.005 < len(red) / len(blue) < 0.03
    assert gen.counts["bills"] == len(t["t_ebill_main"]) and gen.counts["items"] == len(t["t_ebill_detail"])
    assert 4.5 < len(t["t_ebill_detail"]) / len(t["t_ebill_main"]) < 7.5
    types = Counter(b["bus_type"] for b in blue)
    assert {"01", "02", "03", "05", "06"} <= set(types)
    assert max(ts(b["ivc_datetime"]) for b in t["t_ebill_main"]) <= NOW
    assert {b["ivc_datetime"][:4] for b in blue} == {"2024", "2025"}


def test_codes_and_numbers(clean):
    _, t = clean
    keys = set()
    for b in t["t_ebill_main"]:
        code, no = b["bill_batch_code"], b["bill_number"]
        assert re.fullmatch(r"\d{8}", code) and int(code[:2]) in PROVINCES  # DQ01
        assert re.fullmatch(r"\d{10}", no)  # DQ02
        assert re.fullmatch(r"[0-9a-z]{6}", b["random_code"])  # DQ03
        assert (code, no) not in keys  # DQ04
        keys.add((code, no))
        assert code[-2:] == b["ivc_datetime"][2:4]  # DQ05
        assert b["sign_flag"] == "1"  # DQ17
        assert b["place_code"] in {p.code for p in PLACES if p.active}  # DQ16


def test_amounts_add_up(clean):
    _, t = clean
    items = defaultdict(list)
    for d in t["t_ebill_detail"]:
        items[d["main_id"]].append(d)
        assert abs(Decimal(d["std"]) * Decimal(d["number"]) - Decimal(d["amt"])) <= Decimal("0.01")  # DQ08
    for b in t["t_ebill_main"]:
        lines = items[b["id"]]
        assert 1 <= len(lines) <= 15 and [int(d["sort_no"]) for d in lines] == list(range(1, len(lines) + 1))
        total = Decimal(b["total_amt"])
        assert total == sum(Decimal(d["amt"]) for d in lines)  # DQ06
        pays = [Decimal(b[c]) for c in ("fund_pay", "other_fund_pay", "account_pay", "own_pay")]
        assert total == sum(pays)  # DQ07
        if b["red_flag"] == "0":
            assert total > 0 and min(pays) >= 0  # DQ09
        else:
            assert total < 0
        if b["med_care_type_code"] == "07":
            assert pays[:3] == [0, 0, 0]  # DQ10


def test_red_bills_reverse_blue_bills(clean):
    _, t = clean
    by_key = {(b["bill_batch_code"], b["bill_number"]): b for b in t["t_ebill_main"]}
    reds = [b for b in t["t_ebill_main"] if b["red_flag"] == "1"]
    reversed_keys = Counter((r["rel_bill_batch_code"], r["rel_bill_number"]) for r in reds)
    assert reds and max(reversed_keys.values()) == 1  # DQ11: no blue bill reversed twice
    for r in reds:
        blue = by_key[(r["rel_bill_batch_code"], r["rel_bill_number"])]
        assert blue["red_flag"] == "0" and Decimal(r["total_amt"]) == -Decimal(blue["total_amt"])
    for b in t["t_ebill_main"]:
        if b["red_flag"] == "0":  # DQ12
            flushed = (b["bill_batch_code"], b["bill_number"]) in reversed_keys
            assert b["bill_state"] == ("2" if flushed else "1")


def test_times_and_inpatient_fields(clean):
    _, t = clean
    for b in t["t_ebill_main"]:
        bus, issue = ts(b["bus_datetime"]), ts(b["ivc_datetime"])
        assert bus <= issue <= bus + timedelta(minutes=15)  # DQ13 (issued within minutes)
        if b["bus_type"] == "01":  # DQ14
            assert b["hospital_no"] and b["in_hospital_date"] <= b["out_hospital_date"] <= b["ivc_datetime"][:10]
        if b["upload_flag"] != "1":  # DQ18: only the last minutes are still pending
            assert issue > NOW - timedelta(minutes=10) and b["upload_flag"] == "0"


def test_reconciliation_with_his(clean):
    _, t = clean
    settles = {s["his_serial_no"]: s for s in t["t_his_settle"]}
    bills_by_bus = Counter(b["bus_no"] for b in t["t_ebill_main"])
    assert len(settles) == len(t["t_his_settle"]) == len(t["t_ebill_main"])
    for b in t["t_ebill_main"]:  # DQ19
        s = settles[b["bus_no"]]
        assert s["settle_amt"] == b["total_amt"] and bills_by_bus[b["bus_no"]] == 1
        assert s["is_refund"] == b["red_flag"]
        if s["is_refund"] == "1":
            assert s["ori_his_serial_no"] in settles


def test_personal_data_is_well_formed(clean):
    _, t = clean
    people = [b for b in t["t_ebill_main"] if b["payer_type"] == "1"]
    assert sum(1 for b in people if b["payer_tel"]) > 0.7 * len(people)
    for b in t["t_ebill_main"]:  # DQ20
        if b["payer_tel"]:
            assert re.fullmatch(r"1\d{10}", b["payer_tel"])
        if b["payer_id_card"]:
            idc = b["payer_id_card"]
            assert len(idc) == 18 and id_check_digit(idc[:17]) == idc[17]
        if not b["payer_tel"]:
            assert b["notice_flag"] == "9" and b["notice_datetime"] is None


def test_id_check_digit_known_value():
    # The worked example of GB 11643-1999.
    assert id_check_digit("11010519491231002") == "X"


def test_stock_segments(clean):
    _, t = clean
    segs = [{**s, "start": int(s["start_no"]), "end": int(s["end_no"]), "cur": int(s["cur_no"])} for s in t["t_bill_stock"]]
    by_code = defaultdict(list)
    for s in segs:
        assert s["start"] <= s["cur"] <= s["end"] + 1  # DQ21
        by_code[s["bill_batch_code"]].append(s)
    for group in by_code.values():
        group.sort(key=lambda s: s["start"])
        for a, b in zip(group, group[1:]):
            assert a["end"] < b["start"]  # DQ21: no overlap
    for b in t["t_ebill_main"]:  # DQ22: every number from the issuing point's own used range
        no = int(b["bill_number"])
        owners = [s for s in by_code[b["bill_batch_code"]] if s["start"] <= no < s["cur"]]
        assert len(owners) == 1 and owners[0]["place_code"] == b["place_code"]
    # healthy stock: every active point has more than its warning level and 7 days of use
    daily = daily_use_by_place(BPD)
    for place in daily:
        remaining = sum(s["end"] - s["cur"] + 1 for s in segs
                        if s["place_code"] == place and s["stock_state"] == "1" and s["bill_batch_code"].endswith("25"))
        warn = max(s["warn_num"] for s in segs if s["place_code"] == place)
        assert remaining > int(warn) and remaining > 7 * daily[place], place


def test_interface_logs_look_healthy(clean):
    _, t = clean
    logs = t["t_interface_log"]
    assert {lg["interface_type"] for lg in logs} == {"HIS", "SIGN", "FINANCE", "DELIVERY"}
    assert {"invEBillOutpatient", "invEBillHospitalized", "writeOffEBill", "sign", "upload", "archive", "notice"} <= \
        {lg["method_name"] for lg in logs}
    failed = [lg for lg in logs if lg["result_code"] != "S0000"]
    assert 0 < len(failed) < 0.01 * len(logs)
    assert all(ts(lg["req_datetime"]) < NOW - timedelta(hours=3) for lg in failed)
    ok_ms = [int(lg["cost_ms"]) for lg in logs if lg["result_code"] == "S0000"]
    assert 80 <= statistics.median(ok_ms) <= 300


def test_seed_reproduces_the_data():
    _, a = run(seed=3, days=5, bpd=20)
    _, b = run(seed=3, days=5, bpd=20)
    _, c = run(seed=4, days=5, bpd=20)
    assert a == b
    assert a["t_ebill_main"] != c["t_ebill_main"]


def rule_violations(t) -> dict[str, set]:
    """Independent checks of the plantable rules, by business key."""
    key = lambda b: (b["bill_batch_code"], b["bill_number"])  # noqa: E731
    out = defaultdict(set)
    for b in t["t_ebill_main"]:
        pays = [Decimal(b[c]) for c in ("fund_pay", "other_fund_pay", "account_pay", "own_pay")]
        if not re.fullmatch(r"[0-9a-z]{6}", b["random_code"]):
            out["DQ03"].add(key(b))
        if Decimal(b["total_amt"]) != sum(pays):
            out["DQ07"].add(key(b))
        if b["med_care_type_code"] == "07" and any(pays[:3]):
            out["DQ10"].add(key(b))
        if b["sign_flag"] != "1":
            out["DQ17"].add(key(b))
        if b["payer_tel"] and not re.fullmatch(r"1\d{10}", b["payer_tel"]):
            out["DQ20"].add(key(b))
    return out


def test_planted_defects_are_exactly_the_manifest(clean):
    wanted = {"DQ03": 2, "DQ07": 3, "DQ10": 2, "DQ17": 2, "DQ20": 2}
    gen, t = run(defects=wanted)
    found = rule_violations(t)
    assert set(found) == set(wanted)
    for rule, n in wanted.items():
        planted = {tuple(k) for k in gen.manifest[rule]}
        assert len(planted) == n and found[rule] == planted, rule
    # Defects draw from their own random stream: everything else is the clean data.
    _, c = clean
    assert t["t_ebill_detail"] == c["t_ebill_detail"] and t["t_interface_log"] == c["t_interface_log"]
    differing = [a for a, b in zip(t["t_ebill_main"], c["t_ebill_main"]) if a != b]
    assert len(differing) == sum(wanted.values())


def test_defect_requests_are_checked():
    with pytest.raises(ValueError, match="DQ99"):
        defect_rules.check_request({"DQ99": 1})
    with pytest.raises(ValueError, match="non-negative"):
        defect_rules.check_request({"DQ07": -1})
    with pytest.raises(ValueError, match="more days"):
        Generation(1, 2, 5, END, NOW, {"DQ07": 50})
