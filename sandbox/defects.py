"""Planted defects: the registry of data-quality rules the generator knows how to break.

Each entry maps a rule id of docs/ebill-reference-schema.md to a function `(bill, rng, ctx)` that
breaks exactly that rule on one bill and returns True, or returns False when the bill is not
eligible (the generator then tries the next bill). A planter must break its own rule and no other
one, so that each rule finds exactly its planted rows: no misses, no false alarms; where a defect
cannot help breaking a second rule, ALSO_VIOLATES names it and the manifest lists the key there too.

When a planter runs (sandbox/generator.py):
- BEFORE_NUMBERING (DQ01, DQ05, DQ16) change the bill's code or place before it gets its number,
  so that the stock book hands out a number of that code at that place and DQ22 still holds.
- RED_BILL (DQ11) runs on a red bill as it is built; every other bill planter on a blue bill that
  carries no other defect and will not be reversed (a red bill copies its blue bill's amounts,
  which would spread a defect to a second row), after numbering.
- STOCK (DQ21) breaks stock segments at the end (sandbox/defects_stock.py).
Planters draw only from the defect random stream, so clean data do not depend on the request.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sandbox.ebill_catalog import PLACES, REFUND_PLACE


@dataclass
class PlantContext:
    """What planters know beyond the bill itself."""
    cutoff: datetime
    # the number of the latest clean blue bill per (place, code), the source of a DQ04 duplicate
    clean_no: dict[tuple[str, str], int] = field(default_factory=dict)


Planter = Callable[["object", random.Random, PlantContext], bool]
UNKNOWN_PLACE = "X999"


def _dq01_province(bill, rng, ctx) -> bool:
    # 99 is no province code; year digits stay, so DQ05 holds
    bill.code = "99" + bill.code[2:]
    return True


def _dq02_letter_o(bill, rng, ctx) -> bool:
    # a letter O typed for the leading zero; the DQ22 check skips numbers that are not 10 digits
    text = f"{bill.no:010d}"
    if text[0] != "0":
        return False
    bill.no_text = "O" + text[1:]
    return True


def _dq03_check_code(bill, rng, ctx) -> bool:
    # Upper-case letters are outside [0-9a-z]: a payer typing the code would fail verification.
    bill.check_code = "".join(rng.choice("ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(2)) + bill.check_code[2:]
    return True


def _dq04_duplicate(bill, rng, ctx) -> bool:
    # The number of an earlier clean bill of the same place and code: still inside that place's
    # used range (DQ22 holds); popped, so no number is used three times. The earlier bill is never
    # reversed, so no red bill references the duplicated number.
    earlier = ctx.clean_no.pop((bill.place, bill.code), None)
    if earlier is None:
        return False
    bill.no = earlier
    return True


def _dq05_year(bill, rng, ctx) -> bool:
    # three years back: outside even the January grace for the previous year's code
    bill.code = bill.code[:6] + f"{(bill.issue_time.year - 3) % 100:02d}"
    return True


def _dq06_item_lost(bill, rng, ctx) -> bool:
    # an item line lost in transfer: the total and its split still add up (DQ07 holds)
    if len(bill.items) < 2 or bill.items[-1][6] == 0:
        return False
    bill.items = bill.items[:-1]
    return True


def _dq07_payment_split(bill, rng, ctx) -> bool:
    # One cent more in cash than the total allows (a rounding bug in the HIS split).
    if bill.total <= 0:
        return False
    bill.cash += 1
    return True


def _dq08_qty(bill, rng, ctx) -> bool:
    # one more unit than charged; std is in 1/10000 yuan, amt in cents: the line must be off by
    # more than a cent for the rule to see it
    ok = [i for i, it in enumerate(bill.items) if it[4] > 100 and abs(it[4] * (it[5] + 1) - it[6] * 100) > 100]
    if not ok:
        return False
    i = rng.choice(ok)
    cc, code, name, unit, std, q, amt, cls = bill.items[i]
    bill.items = bill.items[:i] + [(cc, code, name, unit, std, q + 1, amt, cls)] + bill.items[i + 1:]
    return True


def _dq09_negative_account(bill, rng, ctx) -> bool:
    # a negative account payment balanced by a cent more cash: the split still adds up (DQ07);
    # not on 全自费, where any account payment would break DQ10
    if bill.med_care_type == "07" or bill.account != 0 or bill.total <= 0:
        return False
    bill.account -= 1
    bill.cash += 1
    return True


def _dq10_self_pay_with_fund(bill, rng, ctx) -> bool:
    # 全自费 with a fund payment; the split still adds up, so DQ07 holds.
    if bill.med_care_type != "07" or bill.cash < 100:
        return False
    moved = rng.randint(1, bill.cash // 2)
    bill.cash -= moved
    bill.fund += moved
    return True


def _dq11_partial_reversal(bill, rng, ctx) -> bool:
    # A red bill that reverses all but the last line of its blue bill: its own items, total and
    # split add up (DQ06, DQ07), its total stays negative (DQ09), its blue bill is FLUSHED with
    # exactly this one red bill (DQ12); only the amount against the blue bill is wrong.
    if bill.red != "1" or len(bill.items) < 2 or bill.items[-1][6] == 0:
        return False
    dropped = bill.items[-1][6]  # negative on a red bill
    bill.items = bill.items[:-1]
    bill.total -= dropped
    bill.cash -= dropped
    return True


def _dq12_flushed_unreversed(bill, rng, ctx) -> bool:
    # marked 已冲红 though no red bill was issued (a reversal that failed half-way)
    bill.state_flag = "2"
    return True


def _dq13_late_issue(bill, rng, ctx) -> bool:
    # issued more than a day after the settlement; not on inpatient bills, whose discharge date
    # comes from the settlement day (DQ14 must hold)
    if bill.visit_type == "I":
        return False
    bill.bus_time = bill.issue_time - timedelta(hours=25, minutes=rng.randint(1, 600))
    return True


def _dq14_no_hospital_no(bill, rng, ctx) -> bool:
    if bill.bus_type != "01":
        return False
    bill.hospital_no = None
    return True


def _dq15_payer_type(bill, rng, ctx) -> bool:
    bill.payer_type = "3"
    return True


def _dq16_unknown_place(bill, rng, ctx) -> bool:
    # a cashier's point never registered in the place table; the stock book gives it numbers
    bill.place = UNKNOWN_PLACE
    return True


def _dq17_unsigned(bill, rng, ctx) -> bool:
    bill.sign_flag = "0"
    return True


def _dq18_upload_pending(bill, rng, ctx) -> bool:
    # still pending long after issue; only on bills old enough that no check window can excuse it
    if bill.issue_time > ctx.cutoff - timedelta(days=2):
        return False
    bill.upload_override = "0"
    return True


def _dq19_settle_amount(bill, rng, ctx) -> bool:
    # the HIS settlement a cent more than the bill: the reconciliation finds no matching bill
    if bill.total <= 0:
        return False
    bill.settle_total = bill.total + 1
    return True


def _dq20_bad_tel(bill, rng, ctx) -> bool:
    # A landline typed into the mobile field: 11 digits but not starting with 1.
    if not bill.tel:
        return False
    bill.tel = "0" + bill.tel[1:]
    return True


def _dq22_foreign_place(bill, rng, ctx) -> bool:
    # Issued under another point's name: numbers of one code are disjoint across segments, so the
    # number lies in none of that point's segments. Not its refund place, which issues its red bills.
    others = [p.code for p in PLACES if p.active and p.code not in (bill.place, REFUND_PLACE.get(bill.place))]
    bill.place = rng.choice(others)
    return True


DEFECTS: dict[str, Planter] = {
    "DQ01": _dq01_province, "DQ02": _dq02_letter_o, "DQ03": _dq03_check_code, "DQ04": _dq04_duplicate,
    "DQ05": _dq05_year, "DQ06": _dq06_item_lost, "DQ07": _dq07_payment_split, "DQ08": _dq08_qty,
    "DQ09": _dq09_negative_account, "DQ10": _dq10_self_pay_with_fund, "DQ11": _dq11_partial_reversal,
    "DQ12": _dq12_flushed_unreversed, "DQ13": _dq13_late_issue, "DQ14": _dq14_no_hospital_no,
    "DQ15": _dq15_payer_type, "DQ16": _dq16_unknown_place, "DQ17": _dq17_unsigned,
    "DQ18": _dq18_upload_pending, "DQ19": _dq19_settle_amount, "DQ20": _dq20_bad_tel,
    "DQ22": _dq22_foreign_place,
}
BEFORE_NUMBERING = frozenset({"DQ01", "DQ05", "DQ16"})
RED_BILL = frozenset({"DQ11"})
AFTER_NUMBERING = frozenset(DEFECTS) - BEFORE_NUMBERING - RED_BILL
STOCK = frozenset({"DQ21"})  # planted on stock segments: sandbox/defects_stock.py
RULES = tuple(sorted(set(DEFECTS) | STOCK))

BILL_KEY = ["bill_code", "bill_no"]
KEYS: dict[str, list[str]] = {**{r: BILL_KEY for r in RULES}, "DQ19": ["bus_no"], "DQ21": ["bill_code", "start_no"]}
# rule -> further rules its defect unavoidably breaks (listed in the manifest under those rules too);
# none with the planters above, each of which keeps every other rule intact
ALSO_VIOLATES: dict[str, tuple[str, ...]] = {}


def bill_key(rule: str, bill) -> list[str]:
    """The business key a checker of `rule` reports for `bill`, the values as written."""
    return [bill.bus_no] if KEYS[rule] == ["bus_no"] else [bill.code, bill.bill_no]


def check_request(defects: dict[str, int] | None) -> dict[str, int]:
    """Validate a {rule_id: count} request; raise naming the unknown rule and the known ones."""
    defects = dict(defects or {})
    for rule, count in defects.items():
        if rule not in RULES:
            raise ValueError(f"defects: no planter for rule {rule!r} (known: {', '.join(RULES)}; "
                             f"add one in sandbox/defects.py)")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"defects[{rule!r}] must be a non-negative integer, got {count!r}")
    return {r: c for r, c in defects.items() if c}
