"""Masking of personal data (payer name, ID number, phone, e-mail).

MZ 三.5: a leak caused by the vendor is a breach of contract. Values of the personal columns are
masked by column wherever they are read (`mask_value`); free text that leaves the database
(command output, error messages, alerts) is scanned for ID numbers, mobile numbers and e-mail
addresses (`mask_text`). Names cannot be found in free text by pattern, which is why checks report
failing rows by business key (bill_code + bill_no) and never select payer_name in the first place.
"""
from __future__ import annotations

import re

# Columns of the canonical relations that hold personal data.
PERSONAL_COLUMNS = frozenset({"payer_name", "id_card_no", "tel", "email"})

# 18-character GB 11643 ID numbers (17 digits + digit or X) and the old 15-digit form.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[0-9Xx]|\d{15})(?![0-9A-Za-z])")
# Mainland mobile numbers, optionally with +86 / 86 prefix.
_MOBILE_RE = re.compile(r"(?<!\d)((?:\+?86)?1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_name(name: str | None) -> str | None:
    """张三 -> 张*, 欧阳娜娜 -> 欧***; organisations keep their first two characters."""
    if not name:
        return name
    name = name.strip()
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_id_card(value: str | None) -> str | None:
    """Keep the first 3 and last 2 characters: the region plus birth date would identify a person."""
    if not value:
        return value
    v = value.strip()
    if len(v) <= 5:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 5) + v[-2:]


def mask_phone(value: str | None) -> str | None:
    """13812345678 -> 138****5678 (the form Chinese apps show)."""
    if not value:
        return value
    v = value.strip()
    if len(v) < 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def mask_email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return mask_name(value)
    local, _, domain = value.partition("@")
    return (local[:1] or "*") + "***@" + domain


_BY_COLUMN = {
    "payer_name": mask_name,
    "id_card_no": mask_id_card,
    "tel": mask_phone,
    "email": mask_email,
}


def mask_value(column: str, value):
    """Mask one value of a personal column; other columns pass unchanged."""
    fn = _BY_COLUMN.get(column.lower())
    if fn is None or value is None:
        return value
    return fn(str(value))


def mask_row(row: dict) -> dict:
    return {k: mask_value(k, v) for k, v in row.items()}


def mask_text(text: str | None) -> str:
    """Mask ID numbers, mobile numbers and e-mail addresses found anywhere in free text."""
    if not text:
        return text or ""
    text = _ID_RE.sub(lambda m: mask_id_card(m.group(1)), text)
    text = _MOBILE_RE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    text = _EMAIL_RE.sub(lambda m: m.group(1) + "***" + m.group(2), text)
    return text
