"""年度票据归档清单: the closing year's bills per 票据代码 and 号段 (bill-number segment), as an auditor of
财政电子票据 asks for at year end — bills issued, red bills, voided numbers, amounts, and the
continuity of the numbers inside each segment: every gap is explained by a void record
(ebill_void) or reported.

Read-only from the canonical relations (docs/ebill-reference-schema.md), aggregated in the database:
a year's bills never travel, only per-segment totals and the gaps between consecutive numbers.
No personal column is selected; what leaves is bill codes, numbers and amounts.

Which bills: those whose 票据代码 carries the year (its last two digits, MoF code structure), looked
up in issue times from 1 January to 10 January of the next year (DQ05: the first days of January
may still use the old code), so the invoice partitions of other years are not read.
"""
from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from config.settings import Site
from tasks.connect.database import EbillDatabase, connect
from tasks.core.reason_codes import Code
from tasks.core.reports import render
from tasks.core.results import CheckResult, Status, utcnow
from tasks.yearend.closing_sql import statements

RETENTION_YEARS = 30
RETENTION_BASIS = "《会计档案管理办法》（财政部、国家档案局令第79号）：原始凭证、记账凭证保管期限 30 年"

class NumberRange(BaseModel):
    bill_code: str
    stock_id: int
    first_no: str
    last_no: str
    count: int
    reason: str = ""        # the void record's reason(s) for explained numbers


class SegmentClosing(BaseModel):
    bill_code: str
    stock_id: int
    place_code: str
    start_no: str
    end_no: str
    current_no: str
    status: str
    issued: int = 0          # blue bills
    red: int = 0             # red bills (冲红)
    flushed: int = 0         # blue bills a red bill reverses
    voided: int = 0          # void records of this segment's numbers
    written_off: int = 0     # numbers left in a VOID segment (作废号段的剩余号码)
    blue_amt: Decimal = Decimal("0.00")
    red_amt: Decimal = Decimal("0.00")
    numbers_used: int = 0
    gap_numbers_explained: int = 0
    gap_numbers_unexplained: int = 0
    unexplained: list[NumberRange] = Field(default_factory=list)

    @property
    def net_amt(self) -> Decimal:
        return self.blue_amt + self.red_amt


class ClosingList(BaseModel):
    site: str
    hospital: str
    year: int
    generated_at: datetime
    segments: list[SegmentClosing]
    explained: list[NumberRange] = Field(default_factory=list)     # gap numbers a void record explains
    void_conflicts: list[str] = Field(default_factory=list)        # void records of numbers that carry a bill
    outside_segments: list[dict] = Field(default_factory=list)     # {bill_code, bills, amt}
    retention_years: int = RETENTION_YEARS

    @property
    def retention_until(self) -> date:
        # counted from the first day of the year after the accounting year (会计档案管理办法 第十四条)
        return date(self.year + self.retention_years, 12, 31)

    @property
    def retention_label(self) -> str:
        return f"会计档案 · 保管期限 {self.retention_years} 年（{self.year + 1}-01-01 起，至 {self.retention_until.isoformat()}）"

    @property
    def unexplained(self) -> list[NumberRange]:
        return [g for s in self.segments for g in s.unexplained]

    def totals(self) -> dict:
        keys = ("issued", "red", "flushed", "voided", "written_off", "gap_numbers_explained", "gap_numbers_unexplained")
        out = {k: sum(getattr(s, k) for s in self.segments) for k in keys}
        out["blue_amt"] = sum((s.blue_amt for s in self.segments), Decimal("0.00"))
        out["red_amt"] = sum((s.red_amt for s in self.segments), Decimal("0.00"))
        out["net_amt"] = out["blue_amt"] + out["red_amt"]
        out["segments"] = len(self.segments)
        out["codes"] = len({s.bill_code for s in self.segments})
        return out

    def results(self) -> list[CheckResult]:
        """The closing list's verdict: number continuity (every gap explained or FAIL)."""
        base = dict(check="closing_number_continuity", title=f"{self.year}年度票据号码连续性", site=self.site,
                    target=f"{len(self.segments)} 个号段", unit="个号码", threshold="未说明缺号 = 0")
        gaps = self.unexplained
        missing = sum(g.count for g in gaps)
        if not self.segments:
            return [CheckResult(status=Status.SKIPPED, code=Code.NO_DATA.value, value=0,
                                reason=f"没有 {self.year} 年票据代码的号段", **base)]
        if missing:
            sample = "；".join(f"{g.bill_code} {g.first_no}–{g.last_no}" for g in gaps[:10])
            return [CheckResult(status=Status.FAIL, code=Code.NUMBER_GAP.value, value=missing,
                                reason=f"{len(gaps)} 处缺号共 {missing} 个号码既无票据也无作废记录：{sample}"
                                       + ("等" if len(gaps) > 10 else ""), **base)]
        explained = self.totals()["gap_numbers_explained"]
        why = f"缺号 {explained} 个均有作废记录" if explained else "无缺号"
        return [CheckResult(status=Status.OK, value=0, reason=f"号段内号码连续，{why}", **base)]


def closing_list(site: Site, year: int, db: EbillDatabase | None = None) -> ClosingList:
    """The closing list of `year` from the site's database (read-only session)."""
    if not 2000 <= year <= 2099:
        raise ValueError(f"closing year {year} is outside 2000-2099 (票据代码 carries two digits of the year)")
    params = {"yy": f"{year % 100:02d}", "since": datetime(year, 1, 1), "until": datetime(year + 1, 1, 11)}
    own = db is None
    db = db or connect(site.database)
    try:
        sql = statements(site.database.dialect)
        segments = db.query(sql["segments"], {"yy": params["yy"]})
        totals = {int(r["stock_id"]): r for r in db.query(sql["totals"], params)}
        gaps = db.query(sql["gaps"], params)
        voids = db.query(sql["voids"], {"yy": params["yy"]})
        outside = db.query(sql["outside"], params)
    finally:
        if own:
            db.close()
    return assemble(site, year, segments, totals, gaps, voids, outside)


def _t(v) -> str:
    return str(v).strip() if v is not None else ""


def assemble(site: Site, year: int, segments: list[dict], totals: dict[int, dict], gaps: list[dict],
             voids: list[dict], outside: list[dict]) -> ClosingList:
    """Rows of the statements → the closing list (pure: the unit tests feed it rows)."""
    void_by_code: dict[str, dict[int, str]] = {}
    for v in voids:
        no = _t(v["bill_no"])
        if no.isdigit():
            void_by_code.setdefault(_t(v["bill_code"]), {})[int(no)] = _t(v["reason"]) or "作废"
    gaps_by_seg: dict[int, list[tuple[int, int]]] = {}
    for g in gaps:
        gaps_by_seg.setdefault(int(g["stock_id"]), []).append((int(g["prev_no"]) + 1, int(g["next_no"]) - 1))
    out, explained, conflicts = [], [], []
    for r in segments:
        sid, code = int(r["stock_id"]), _t(r["bill_code"])
        start, end, cur = int(_t(r["start_no"])), int(_t(r["end_no"])), int(_t(r["current_no"]))
        seg = SegmentClosing(bill_code=code, stock_id=sid, place_code=_t(r["place_code"]), start_no=_t(r["start_no"]),
                             end_no=_t(r["end_no"]), current_no=_t(r["current_no"]), status=_t(r["status"]))
        t = totals.get(sid)
        holes = list(gaps_by_seg.get(sid, []))
        last_used = min(cur, end + 1) - 1
        if t:
            seg.issued, seg.red, seg.flushed = int(t["blue"] or 0), int(t["red"] or 0), int(t["flushed"] or 0)
            seg.blue_amt, seg.red_amt = Decimal(t["blue_amt"] or 0), Decimal(t["red_amt"] or 0)
            seg.numbers_used = int(t["numbers_used"] or 0)
            first, last = int(_t(t["first_no"])), int(_t(t["last_no"]))
            if first > start:
                holes.insert(0, (start, first - 1))
            if last < last_used:
                holes.append((last + 1, last_used))
        elif last_used >= start:
            holes = [(start, last_used)]
        seg_voids = {n: why for n, why in void_by_code.get(code, {}).items() if start <= n <= end}
        seg.voided = len(seg_voids)
        if seg.status == "VOID" and cur <= end:
            seg.written_off = end - cur + 1
        in_holes = set()
        for lo, hi in holes:
            for a, b, is_void in _split(lo, hi, seg_voids):
                rng = NumberRange(bill_code=code, stock_id=sid, first_no=f"{a:010d}", last_no=f"{b:010d}",
                                  count=b - a + 1)
                if is_void:
                    rng.reason = "；".join(sorted({seg_voids[n] for n in range(a, b + 1)}))
                    explained.append(rng)
                    seg.gap_numbers_explained += rng.count
                    in_holes.update(range(a, b + 1))
                else:
                    seg.unexplained.append(rng)
                    seg.gap_numbers_unexplained += rng.count
        for n in sorted(seg_voids):
            if n <= last_used and n not in in_holes:
                conflicts.append(f"{code} {n:010d}")
        out.append(seg)
    return ClosingList(site=site.site, hospital=site.name, year=year, generated_at=utcnow(), segments=out,
                       explained=explained, void_conflicts=conflicts,
                       outside_segments=[{"bill_code": _t(o["bill_code"]), "bills": int(o["bills"]),
                                          "amt": Decimal(o["amt"] or 0)} for o in outside])


def _split(lo: int, hi: int, voids: dict[int, str]):
    """(first, last, is_void) runs of lo..hi: void-recorded numbers and the rest. Walks only the
    void numbers inside the range, so a gap of a million numbers costs nothing."""
    inside = sorted(n for n in voids if lo <= n <= hi)
    pos = lo
    i = 0
    while i < len(inside):
        a = inside[i]
        b = a
        while i + 1 < len(inside) and inside[i + 1] == b + 1:
            i += 1
            b = inside[i]
        if a > pos:
            yield pos, a - 1, False
        yield a, b, True
        pos = b + 1
        i += 1
    if pos <= hi:
        yield pos, hi, False


CSV_HEADER = ["票据代码", "号段ID", "开票点", "号段起号", "号段止号", "已用至(下一号)", "号段状态", "蓝票张数", "红票张数",
              "被冲红蓝票", "作废号码", "作废号段剩余号码", "蓝票金额", "红票金额", "净额", "已说明缺号", "未说明缺号",
              "未说明缺号区间", "保管期限"]


def write_csv(cl: ClosingList, path: Path) -> Path:
    """The closing list as CSV (UTF-8 with BOM, so spreadsheet programs show the Chinese headers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for s in cl.segments:
            w.writerow([s.bill_code, s.stock_id, s.place_code, s.start_no, s.end_no, s.current_no, s.status, s.issued,
                        s.red, s.flushed, s.voided, s.written_off, f"{s.blue_amt:.2f}", f"{s.red_amt:.2f}",
                        f"{s.net_amt:.2f}", s.gap_numbers_explained, s.gap_numbers_unexplained,
                        ";".join(f"{g.first_no}-{g.last_no}" for g in s.unexplained), cl.retention_label])
    return path


def render_section(cl: ClosingList) -> str:
    """The report's section 年度票据归档清单 (Markdown, Chinese)."""
    return render("year_end_closing.md.j2", cl=cl, totals=cl.totals(), verdict=cl.results()[0],
                  retention_basis=RETENTION_BASIS)
