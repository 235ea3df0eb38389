"""Planted defects: the registry of data-quality rules the generator knows how to break.

Each entry maps a rule id of docs/ebill-reference-schema.md to a function that breaks exactly that
rule on one bill, just before the bill is written, and returns True; or returns False when the
bill is not eligible (the generator then tries the next bill). A planter must break its own rule
and no other one, so that each rule finds exactly its planted rows: no misses, no false alarms.
The generator only hands over blue bills that carry no other defect and will not be reversed
(a red bill copies its blue bill's amounts, which would spread a defect to a second row).

To add a rule: write `def _dqNN(bill, rng) -> bool`, register it in DEFECTS, and give its key in
the manifest (bill-level rules use [bill_code, bill_no]).
"""
from __future__ import annotations

import random
from typing import Callable

# Keep in step with the fields the generator fills (sandbox/generator.py, Bill).
Planter = Callable[["object", random.Random], bool]


def _dq03_check_code(bill, rng: random.Random) -> bool:
    # Upper-case letters are outside [0-9a-z]: a payer typing the code would fail verification.
    bill.check_code = "".join(rng.choice("ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(2)) + bill.check_code[2:]
    return True


def _dq07_payment_split(bill, rng: random.Random) -> bool:
    # One cent more in cash than the total allows (a rounding bug in the HIS split).
    if bill.total <= 0:
        return False
    bill.cash += 1
    return True


def _dq10_self_pay_with_fund(bill, rng: random.Random) -> bool:
    # 全自费 with a fund payment; the split still adds up, so DQ07 holds.
    if bill.med_care_type != "07" or bill.cash < 100:
        return False
    moved = rng.randint(1, bill.cash // 2)
    bill.cash -= moved
    bill.fund += moved
    return True


def _dq17_unsigned(bill, rng: random.Random) -> bool:
    bill.sign_flag = "0"
    return True


def _dq20_bad_tel(bill, rng: random.Random) -> bool:
    # A landline typed into the mobile field: 11 digits but not starting with 1.
    if not bill.tel:
        return False
    bill.tel = "0" + bill.tel[1:]
    return True


DEFECTS: dict[str, Planter] = {
    "DQ03": _dq03_check_code,
    "DQ07": _dq07_payment_split,
    "DQ10": _dq10_self_pay_with_fund,
    "DQ17": _dq17_unsigned,
    "DQ20": _dq20_bad_tel,
}


def check_request(defects: dict[str, int] | None) -> dict[str, int]:
    """Validate a {rule_id: count} request; raise naming the unknown rule and the known ones."""
    defects = dict(defects or {})
    for rule, count in defects.items():
        if rule not in DEFECTS:
            raise ValueError(f"defects: no planter for rule {rule!r} (known: {', '.join(sorted(DEFECTS))}; "
                             f"add one in sandbox/defects.py)")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"defects[{rule!r}] must be a non-negative integer, got {count!r}")
    return {r: c for r, c in defects.items() if c}
