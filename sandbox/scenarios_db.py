"""Troubles put into the sandbox's e-bill database for a test, and taken out again.

Each scenario is a context manager: on entry it changes the vendor tables (never the canonical
views) through the superuser connection, as the vendor's application or a cashier would have; on
exit, even when the test failed, it restores exactly the rows it touched. Other readers of a shared
sandbox see the change only while the `with` block runs.

Rows are written at naive Asia/Shanghai local time, as the vendor's tables store it: `at` defaults
to the hospital's present minute (sandbox.generator.local_now), and a test may pass a moment of its
own to stage the trouble inside the generated data's history.

    with failing_interface("sign_server", n_fail=5, n_ok=20):
        ...  # the interface check now sees a failure rate of 20 % (plus the generated calls)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

import psycopg

from sandbox import manager, postgres
from sandbox.generator import local_now

# canonical target -> the vendor's interface_type and a typical method (views map them back)
VENDOR_TARGET = {"his_api": ("HIS", "invEBillOutpatient"), "sign_server": ("SIGN", "sign"),
                 "finance": ("FINANCE", "upload"), "delivery": ("DELIVERY", "notice")}
FAILURE = {"his_api": ("E1001", "请求参数校验失败"), "sign_server": ("E2001", "签名服务器连接超时"),
           "finance": ("E3001", "财政平台返回: 系统繁忙"), "delivery": ("E4001", "短信网关发送失败")}
MARK = "[ebops-scenario] "  # in result_msg: a row left behind by a killed test is recognisable
SPREAD = timedelta(minutes=10)  # inserted calls fall in the 10 minutes before `at`
SCHEMA = postgres.VENDOR_SCHEMA


@dataclass
class Staged:
    """What a scenario did, for the test's assertions."""
    at: datetime
    keys: list[tuple[str, str]] = field(default_factory=list)  # (bill_code, bill_no) touched
    info: dict = field(default_factory=dict)


def admin_connection() -> psycopg.Connection:
    """The sandbox superuser's autocommit connection (state and credentials of $EBOPS_SANDBOX_DIR)."""
    state = manager.read_state().get("postgres")
    if not state:
        raise RuntimeError(f"no sandbox database in {manager.root()} (hint: ebops sandbox up)")
    return psycopg.connect(postgres.admin_conninfo(state, manager.credentials()), autocommit=True)


def _vendor(target: str) -> tuple[str, str]:
    if target not in VENDOR_TARGET:
        raise ValueError(f"unknown interface target {target!r} (hint: one of {', '.join(VENDOR_TARGET)})")
    return VENDOR_TARGET[target]


@contextmanager
def _calls(target: str, results: list[tuple[int, str, str]], at: datetime | None) -> Iterator[Staged]:
    """Insert one call log row per (cost_ms, result_code, message), spread before `at`; delete them after."""
    at = at or local_now()
    itype, method = _vendor(target)
    step = SPREAD / (len(results) + 1)
    with admin_connection() as conn:
        with conn.transaction():
            # lock out a concurrent scenario between reading the highest id and inserting above it
            conn.execute(f"LOCK TABLE {SCHEMA}.t_interface_log IN SHARE ROW EXCLUSIVE MODE")
            first = conn.execute(f"SELECT COALESCE(MAX(log_id), 0) + 1 FROM {SCHEMA}.t_interface_log").fetchone()[0]
            rows = [(first + i, itype, method, f"SCN{at:%Y%m%d%H%M%S}{i:05d}", "MZ01", at - step * (i + 1), ms, code,
                     MARK + msg) for i, (ms, code, msg) in enumerate(results)]
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {SCHEMA}.t_interface_log (log_id, interface_type, method_name, bus_no, "
                                f"place_code, req_datetime, cost_ms, result_code, result_msg) "
                                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        ids = [r[0] for r in rows]
        try:
            yield Staged(at=at, info={"log_ids": ids})
        finally:
            conn.execute(f"DELETE FROM {SCHEMA}.t_interface_log WHERE log_id = ANY(%s)", (ids,))


def failing_interface(target: str, n_fail: int, n_ok: int, *, ms: int = 150, at: datetime | None = None):
    """n_fail failed and n_ok successful calls of `target` in the minutes before `at` (default now)."""
    if n_fail < 0 or n_ok < 0 or n_fail + n_ok == 0:
        raise ValueError("n_fail and n_ok must be >= 0, and at least one call")
    _vendor(target)  # an unknown target is refused before the database is touched
    code, msg = FAILURE[target]
    results = [(ms * 5, code, msg)] * n_fail + [(ms, "S0000", "成功")] * n_ok
    return _calls(target, results, at)


def slow_interface(target: str, ms: int, *, n: int = 30, at: datetime | None = None):
    """n successful calls of `target` that each took `ms` milliseconds, before `at` (default now)."""
    if n < 1 or ms < 0:
        raise ValueError("n must be >= 1 and ms >= 0")
    return _calls(target, [(ms, "S0000", "成功")] * n, at)


@contextmanager
def low_stock(place_code: str, remaining: int | None = None) -> Iterator[Staged]:
    """Leave `remaining` numbers (default: half the warning level) in the issuing point's ACTIVE
    stock of each of its bill codes: its first ACTIVE segment keeps them, the others are marked
    used up. remaining=0 leaves an ACTIVE segment with no number (the point cannot issue)."""
    with admin_connection() as conn:
        segs = conn.execute(f"SELECT id, bill_batch_code, start_no, end_no, cur_no, warn_num, stock_state "
                            f"FROM {SCHEMA}.t_bill_stock WHERE place_code = %s AND stock_state = '1' ORDER BY id",
                            (place_code,)).fetchall()
        if not segs:
            raise ValueError(f"issuing point {place_code!r} has no ACTIVE stock segment in the sandbox")
        staged = Staged(at=local_now(), info={"segments": len(segs)})
        kept: set[str] = set()
        try:
            for sid, code, start, end, _cur, warn, _state in segs:
                if code in kept:
                    conn.execute(f"UPDATE {SCHEMA}.t_bill_stock SET stock_state = '2' WHERE id = %s", (sid,))
                    continue
                kept.add(code)
                left = warn // 2 if remaining is None else remaining
                new_cur = max(int(start), int(end) - left + 1)
                conn.execute(f"UPDATE {SCHEMA}.t_bill_stock SET cur_no = %s WHERE id = %s", (f"{new_cur:010d}", sid))
                staged.info.setdefault("remaining", {})[code] = int(end) - new_cur + 1
                staged.info.setdefault("warn", {})[code] = warn
            yield staged
        finally:
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {SCHEMA}.t_bill_stock SET cur_no = %s, stock_state = %s WHERE id = %s",
                                [(c, st, sid) for sid, _code, _s, _e, c, _w, st in segs])


@contextmanager
def finance_backlog(n: int, hours_old: float, *, failed: int = 0, at: datetime | None = None) -> Iterator[Staged]:
    """Turn the n most recent bills issued at least `hours_old` hours before `at` (default now)
    back to "not uploaded, not archived"; the first `failed` of them as refused by the platform."""
    if n < 1 or not 0 <= failed <= n:
        raise ValueError("n must be >= 1 and 0 <= failed <= n")
    at = at or local_now()
    with admin_connection() as conn:
        bills = conn.execute(f"SELECT id, ivc_datetime, bill_batch_code, bill_number, upload_flag, upload_datetime, "
                             f"archive_flag FROM {SCHEMA}.t_ebill_main WHERE ivc_datetime <= %s "
                             f"AND upload_flag = '1' AND archive_flag = '1' ORDER BY ivc_datetime DESC LIMIT %s",
                             (at - timedelta(hours=hours_old), n)).fetchall()
        if len(bills) < n:
            raise ValueError(f"only {len(bills)} uploaded bills are {hours_old} hours old or older")
        staged = Staged(at=at, keys=[(b[2], b[3]) for b in bills])
        try:
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {SCHEMA}.t_ebill_main SET upload_flag = %s, upload_datetime = NULL, "
                                f"archive_flag = '0' WHERE id = %s AND ivc_datetime = %s",
                                [("2" if i < failed else "0", b[0], b[1]) for i, b in enumerate(bills)])
            yield staged
        finally:
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {SCHEMA}.t_ebill_main SET upload_flag = %s, upload_datetime = %s, "
                                f"archive_flag = %s WHERE id = %s AND ivc_datetime = %s",
                                [(b[4], b[5], b[6], b[0], b[1]) for b in bills])
