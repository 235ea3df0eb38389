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


BUS_TYPES = {f"{i:02d}" for i in range(1, 9)}
MED_CARE_TYPES = {"01", "02", "03", "04", "05", "06", "07", "90", "99"}
CHARGE_CODES = {f"{i:02d}" for i in range(1, 15)}
PROVINCE_CODE = re.compile(r"(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5])[0-9]{6}")
PAYS = ("fund_pay", "other_fund_pay", "account_pay", "own_pay")


def rule_violations(t, now=NOW) -> dict[str, set]:
    """An independent checker of all rules DQ01-DQ22 over the vendor rows, by business key, with the
    semantics the expectation suites use (docs/ebill-reference-schema.md)."""
    key = lambda b: (b["bill_batch_code"], b["bill_number"])  # noqa: E731
    out = defaultdict(set)
    bills, settles, places = t["t_ebill_main"], t["t_his_settle"], {p["place_code"] for p in t["t_bill_place"]}
    items = defaultdict(list)
    for d in t["t_ebill_detail"]:
        items[d["main_id"]].append(d)
    by_key = defaultdict(list)
    for b in bills:
        by_key[key(b)].append(b)
    blue = {k: bs[0] for k, bs in by_key.items() if bs[0]["red_flag"] == "0"}
    reds_of = Counter((b["rel_bill_batch_code"], b["rel_bill_number"]) for b in bills if b["red_flag"] == "1")
    by_code = defaultdict(list)
    for s in t["t_bill_stock"]:
        by_code[s["bill_batch_code"]].append((s, int(s["start_no"]), int(s["end_no"]), int(s["cur_no"])))
    for b in bills:
        k, code, no, red = key(b), b["bill_batch_code"], b["bill_number"], b["red_flag"] == "1"
        total, pays = Decimal(b["total_amt"]), [Decimal(b[c]) for c in PAYS]
        issue, bus = ts(b["ivc_datetime"]), ts(b["bus_datetime"])
        lines = items[b["id"]]
        checks = {
            "DQ01": not PROVINCE_CODE.fullmatch(code),
            "DQ02": not re.fullmatch(r"[0-9]{10}", no),
            "DQ03": not re.fullmatch(r"[0-9a-z]{6}", b["random_code"]),
            "DQ04": len(by_key[k]) > 1,
            "DQ05": code[-2:] != f"{issue.year % 100:02d}" and not (
                issue.month == 1 and issue.day <= 10 and code[-2:] == f"{(issue.year - 1) % 100:02d}"),
            "DQ06": total != sum(Decimal(d["amt"]) for d in lines),
            "DQ07": total != sum(pays),
            "DQ08": any(abs(Decimal(d["std"]) * Decimal(d["number"]) - Decimal(d["amt"])) > Decimal("0.01")
                        for d in lines),
            "DQ09": total > 0 if red else (total < 0 or min(pays) < 0),
            "DQ10": b["med_care_type_code"] == "07" and any(pays[:3]),
            "DQ11": red and ((b["rel_bill_batch_code"], b["rel_bill_number"]) not in blue
                             or total != -Decimal(blue[(b["rel_bill_batch_code"], b["rel_bill_number"])]["total_amt"])
                             or reds_of[(b["rel_bill_batch_code"], b["rel_bill_number"])] > 1),
            "DQ12": not red and (reds_of[k] != 1 if b["bill_state"] == "2" else reds_of[k] > 0),
            "DQ13": not bus <= issue <= bus + timedelta(hours=24) or issue > now,
            "DQ14": b["bus_type"] == "01" and not (
                b["hospital_no"] and b["in_hospital_date"] <= b["out_hospital_date"] <= b["ivc_datetime"][:10]),
            "DQ15": b["bus_type"] not in BUS_TYPES or b["med_care_type_code"] not in MED_CARE_TYPES
            or b["payer_type"] not in ("1", "2") or any(d["charge_code"] not in CHARGE_CODES for d in lines),
            "DQ16": b["place_code"] not in places,
            "DQ17": b["sign_flag"] != "1",
            "DQ18": issue < now - timedelta(hours=24) and b["upload_flag"] != "1",
            "DQ20": bool(b["payer_tel"]) and not re.fullmatch(r"1\d{10}", b["payer_tel"]) or bool(
                b["payer_id_card"]) and (len(b["payer_id_card"]) != 18 or
                                         id_check_digit(b["payer_id_card"][:17]) != b["payer_id_card"][17]),
        }
        if re.fullmatch(r"[0-9]{10}", no):  # DQ22 skips malformed numbers (DQ02's)
            n = int(no)
            own = [s for s, lo, hi, _ in by_code[code] if s["place_code"] == b["place_code"] and lo <= n <= hi]
            used = [s for s, lo, hi, cur in by_code[code] if lo <= n < cur and n <= hi]
            checks["DQ22"] = not own or len(used) > 1
        for rule, failed in checks.items():
            if failed:
                out[rule].add(k)
    # DQ19, by bus_no
    bills_by_bus = defaultdict(list)
    for b in bills:
        bills_by_bus[b["bus_no"]].append(b)
    for s in settles:
        mine = bills_by_bus[s["his_serial_no"]]
        if s["is_refund"] == "0" and Decimal(s["settle_amt"]) > 0:
            if sum(1 for b in mine if b["red_flag"] == "0" and b["total_amt"] == s["settle_amt"]) != 1:
                out["DQ19"].add((s["his_serial_no"],))
        elif s["is_refund"] == "1" and not any(b["red_flag"] == "1" for b in mine):
            out["DQ19"].add((s["his_serial_no"],))
    settled = {s["his_serial_no"] for s in settles}
    out["DQ19"] |= {(b["bus_no"],) for b in bills if b["bus_no"] not in settled}
    # DQ21, by [bill_code, start_no]
    for code, segs in by_code.items():
        for s, lo, hi, cur in segs:
            if not lo <= cur <= hi + 1 or any(o is not s and lo <= ohi and olo <= hi for o, olo, ohi, _ in segs):
                out["DQ21"].add((code, s["start_no"]))
    return {rule: keys for rule, keys in out.items() if keys}


def test_clean_data_break_no_rule(clean):
    assert rule_violations(clean[1]) == {}


ALL_RULES = [f"DQ{i:02d}" for i in range(1, 23)]


@pytest.fixture(scope="module")
def planted():
    """60 days x 80 bills with 2 defects of every rule, and the same data clean."""
    wanted = {rule: 2 for rule in ALL_RULES}
    return wanted, run(days=60, bpd=80, defects=wanted), run(days=60, bpd=80)


def test_planted_defects_are_exactly_the_manifest(planted):
    wanted, (gen, t), _ = planted
    doc = gen.document()
    assert rule_violations(t) == {rule: {tuple(k) for k in keys} for rule, keys in doc["rules"].items()}
    for rule, n in wanted.items():
        assert len(doc["rules"][rule]) == n == len({tuple(k) for k in doc["rules"][rule]}), rule
    assert doc["key"] == ["bill_code", "bill_no"] and set(doc["keys"]) == set(doc["rules"])
    assert doc["keys"]["DQ19"] == ["bus_no"] and doc["keys"]["DQ21"] == ["bill_code", "start_no"]
    assert Counter(d["planted"] for d in doc["defects"]) == Counter(wanted)
    # no planter here breaks a second rule: each defect violates its own rule only
    assert all(list(d["violates"]) == [d["planted"]] for d in doc["defects"])


def test_planted_rows_carry_their_defect(planted):
    _, (gen, t), _ = planted
    rules = gen.manifest
    main = {(b["bill_batch_code"], b["bill_number"]): b for b in t["t_ebill_main"]}
    for code, no in rules["DQ02"]:
        assert no[0] == "O" and no[1:].isdigit() and main[(code, no)]["bill_number"] == no
    for k in rules["DQ12"]:
        assert main[tuple(k)]["bill_state"] == "2" and main[tuple(k)]["red_flag"] == "0"
    uploads = {lg["bus_no"] for lg in t["t_interface_log"] if lg["method_name"] in ("upload", "archive")}
    for k in rules["DQ18"]:
        b = main[tuple(k)]
        assert (b["upload_flag"], b["upload_datetime"], b["archive_flag"]) == ("0", None, "0")
        assert b["bus_no"] not in uploads and ts(b["ivc_datetime"]) < NOW - timedelta(days=2)
    settle = {s["his_serial_no"]: s for s in t["t_his_settle"]}
    bill_of_bus = {b["bus_no"]: b for b in t["t_ebill_main"]}
    for (bus,) in rules["DQ19"]:
        assert Decimal(settle[bus]["settle_amt"]) == Decimal(bill_of_bus[bus]["total_amt"]) + Decimal("0.01")
    stock = {(s["bill_batch_code"], s["start_no"]): s for s in t["t_bill_stock"]}
    for k in rules["DQ21"]:
        s = stock[tuple(k)]
        assert int(s["cur_no"]) == int(s["end_no"]) + 2 and s["stock_state"] in ("2", "3")
    for k in rules["DQ11"]:
        assert main[tuple(k)]["red_flag"] == "1"
    for k in rules["DQ16"]:
        assert main[tuple(k)]["place_code"] not in {p.code for p in PLACES}
    # a planted code or place has its own stock segment, closed (USED_UP) at its last number
    for k in rules["DQ01"] + rules["DQ05"] + rules["DQ16"]:
        b = main[tuple(k)]
        segs = [s for s in t["t_bill_stock"] if (s["place_code"], s["bill_batch_code"]) == (b["place_code"], k[0])]
        assert segs and all(s["stock_state"] == "2" and int(s["cur_no"]) == int(s["end_no"]) + 1 for s in segs)


def bundles(t) -> dict[str, tuple]:
    """Every row written for a bill (its main row, items, settlement and interface calls), by bill id."""
    items, settles, logs = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in t["t_ebill_detail"]:
        items[r["main_id"]].append(r)
    for r in t["t_his_settle"]:
        settles[r["his_serial_no"]].append(r)
    for r in t["t_interface_log"]:
        logs[r["bus_no"]].append(r)
    return {b["id"]: (b, items[b["id"]], settles[b["bus_no"]], logs[b["bus_no"]]) for b in t["t_ebill_main"]}


def test_defects_leave_the_clean_rows_alone(planted):
    wanted, (gen, t), (_, c) = planted
    mine, clean_rows = bundles(t), bundles(c)
    assert mine.keys() == clean_rows.keys()
    differing = [i for i in mine if mine[i] != clean_rows[i]]
    # one bill per defect, except DQ21's on stock segments
    assert len(differing) == sum(n for rule, n in wanted.items() if rule != "DQ21")
    planted_keys = {tuple(k) for keys in gen.manifest.values() for k in keys}
    for i in differing:
        b = mine[i][0]
        assert (b["bill_batch_code"], b["bill_number"]) in planted_keys or (b["bus_no"],) in planted_keys
    # stock: the clean segments as they were but for DQ21's pointer, then the planted codes' segments
    stock, clean_stock = t["t_bill_stock"], c["t_bill_stock"]
    changed = [(a["bill_batch_code"], a["start_no"]) for a, b in zip(stock, clean_stock) if a != b]
    assert sorted(changed) == sorted(tuple(k) for k in gen.manifest["DQ21"])
    assert all(int(s["start_no"]) >= 9_000_000_000 for s in stock[len(clean_stock):])
    assert t["t_bill_place"] == c["t_bill_place"]


def test_same_seed_same_manifest(planted):
    wanted, (gen, _), _ = planted
    again, _ = run(days=60, bpd=80, defects=wanted)
    assert again.document() == gen.document()
    other, t = run(seed=11, days=90, bpd=50, defects={rule: 3 for rule in ALL_RULES})
    assert rule_violations(t) == {rule: {tuple(k) for k in keys} for rule, keys in other.manifest.items()}
    assert all(len(other.manifest[rule]) == 3 for rule in ALL_RULES)
    assert other.document() != gen.document()


def test_planting_fails_loudly_without_eligible_bills():
    # more DQ21 defects than there are closed stock segments: an error, not a short manifest
    gen = Generation(5, 30, 60, END, NOW, {"DQ21": 500})
    with pytest.raises(RuntimeError, match="DQ21"):
        for _ in gen.chunks():
            pass


def test_defect_requests_are_checked():
    with pytest.raises(ValueError, match="DQ99"):
        defect_rules.check_request({"DQ99": 1})
    assert defect_rules.check_request({rule: 1 for rule in ALL_RULES}) == {rule: 1 for rule in ALL_RULES}
    with pytest.raises(ValueError, match="non-negative"):
        defect_rules.check_request({"DQ07": -1})
    with pytest.raises(ValueError, match="more days"):
        Generation(1, 2, 5, END, NOW, {"DQ07": 50})


def test_refunds_of_the_last_day_get_their_red_bill():
    """A bill refunded on the generation's last day is written FLUSHED: its red bill must be there too."""
    last_day_reds = 0
    for seed in range(1, 6):
        gen = Generation(seed, 10, 120, END, datetime.combine(END + timedelta(days=1), datetime.min.time()))
        main = [ln.split("\t") for chunk in gen.chunks() for ln in chunk.get("t_ebill_main", [])]
        cols = [c.strip() for c in COLUMNS["t_ebill_main"].split(",")]
        rows = [dict(zip(cols, v)) for v in main]
        reversed_keys = {(r["rel_bill_batch_code"], r["rel_bill_number"]) for r in rows if r["red_flag"] == "1"}
        flushed = {(b["bill_batch_code"], b["bill_number"]) for b in rows if b["red_flag"] == "0" and b["bill_state"] == "2"}
        assert flushed == reversed_keys, seed
        last_day_reds += sum(1 for r in rows if r["red_flag"] == "1" and ts(r["ivc_datetime"]).date() == END)
    assert last_day_reds > 0  # the case is exercised
