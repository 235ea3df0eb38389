"""The year's closing list as SQL (PostgreSQL and Oracle): per 票据代码 and 号段, the segments,
their totals, the gaps in their numbers, the void records and the numbers used outside any
segment. Read-only, over the canonical relations; no personal column is selected.
tasks/yearend/closing.py assembles the list from these rows."""
from __future__ import annotations

_DIGITS = {"postgresql": "{col} ~ '^[0-9]{{10}}$'", "oracle": "REGEXP_LIKE({col}, '^[0-9]{{10}}$')"}
_NUM = {"postgresql": "CAST({col} AS bigint)", "oracle": "TO_NUMBER({col})"}

SEGMENTS_SQL = """
SELECT stock_id, place_code, bill_code, start_no, end_no, current_no, status
FROM ebill_stock
WHERE SUBSTR(bill_code, 7, 2) = :yy
ORDER BY bill_code, start_no
"""

_IN_SEGMENT = """FROM ebill_stock s
    JOIN ebill_invoice i ON i.bill_code = s.bill_code AND i.bill_no BETWEEN s.start_no AND s.end_no
    WHERE SUBSTR(s.bill_code, 7, 2) = :yy AND i.issue_time >= :since AND i.issue_time < :until AND {digits}"""

TOTALS_SQL = """
SELECT s.stock_id,
       SUM(CASE WHEN i.bill_kind = 'B' THEN 1 ELSE 0 END) AS blue,
       SUM(CASE WHEN i.bill_kind = 'R' THEN 1 ELSE 0 END) AS red,
       SUM(CASE WHEN i.bill_kind = 'B' AND i.status = 'FLUSHED' THEN 1 ELSE 0 END) AS flushed,
       SUM(CASE WHEN i.bill_kind = 'B' THEN i.total_amt ELSE 0 END) AS blue_amt,
       SUM(CASE WHEN i.bill_kind = 'R' THEN i.total_amt ELSE 0 END) AS red_amt,
       MIN(i.bill_no) AS first_no, MAX(i.bill_no) AS last_no,
       COUNT(DISTINCT i.bill_no) AS numbers_used
    """ + _IN_SEGMENT + """
GROUP BY s.stock_id
"""

# Gaps between consecutive used numbers of a segment (LAG over the segment's numbers).
GAPS_SQL = """
SELECT stock_id, prev_no, next_no FROM (
    SELECT s.stock_id, {num} AS next_no, LAG({num}) OVER (PARTITION BY s.stock_id ORDER BY {num}) AS prev_no
    """ + _IN_SEGMENT + """
) g
WHERE next_no - prev_no > 1
ORDER BY stock_id, next_no
"""

VOIDS_SQL = """
SELECT bill_code, bill_no, place_code, void_time, reason
FROM ebill_void
WHERE SUBSTR(bill_code, 7, 2) = :yy
ORDER BY bill_code, bill_no
"""

# Bills of the year's codes that no segment holds (DQ22's finding, counted here per code).
OUTSIDE_SQL = """
SELECT i.bill_code, COUNT(*) AS bills, SUM(i.total_amt) AS amt
FROM ebill_invoice i
WHERE SUBSTR(i.bill_code, 7, 2) = :yy AND i.issue_time >= :since AND i.issue_time < :until
  AND NOT EXISTS (SELECT 1 FROM ebill_stock s WHERE s.bill_code = i.bill_code AND i.bill_no BETWEEN s.start_no AND s.end_no)
GROUP BY i.bill_code
ORDER BY i.bill_code
"""


def statements(dialect: str) -> dict[str, str]:
    """Every statement of the closing list in the site's dialect (the unit test parses each)."""
    digits = _DIGITS[dialect].format(col="i.bill_no")
    num = _NUM[dialect].format(col="i.bill_no")
    return {"segments": SEGMENTS_SQL, "totals": TOTALS_SQL.format(digits=digits),
            "gaps": GAPS_SQL.format(num=num, digits=digits), "voids": VOIDS_SQL, "outside": OUTSIDE_SQL}
