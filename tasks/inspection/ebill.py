"""The e-bill side of the inspection catalogue, read from the canonical relations (QH rows 7-12).

interface_calls: success rate and latency per interface over a window (签名服务器, HIS, 财政, 交付);
finance_backlog: bills not yet supervised or archived by the finance platform (在途票据);
bill_stock: bill-number stock per issuing point against its warning level and its use (票据库存).

The canonical relations hold naive local times of the hospital. "Now" is therefore taken in the
site's time zone here, in Python, and bound as a naive local timestamp: neither the worker's nor
the database server's clock zone can shift a window. The judging is pure (judge_* below) so that
every threshold is unit-tested without a database.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config.settings import Site, Thresholds
from tasks.connect.database import connect
from tasks.connect.database.base import FinanceBacklog, InterfaceStats, StockLevel
from tasks.core.check_task import check_task
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, grade, utcnow
from tasks.inspection.database import database_host

TARGET_ZH = {"his_api": "HIS开票接口", "sign_server": "签名服务器", "finance": "财政平台", "delivery": "交付渠道"}
STAGE_ZH = {"upload": "未上传财政监制", "archive": "已监制但未归档"}
SUCCESS = "S0000"
BACKLOG_KEYS_IN_REASON = 10
BACKLOG_KEYS_IN_RAW = 100
STOCK_USE_DAYS = 30


def site_now(site: Site, now: datetime | None = None) -> datetime:
    """The hospital's local wall-clock time, naive, to the second: the form its tables store.

    An aware `now` is converted to the site's zone; a naive one is taken as already local."""
    tz = ZoneInfo(site.timezone)
    if now is None:
        now = datetime.now(tz)
    elif now.tzinfo is not None:
        now = now.astimezone(tz)
    return now.replace(tzinfo=None, microsecond=0)


def bill_key(code: str, no: str) -> str:
    # A dash between code and number: run together they are 18 digits, which free-text masking
    # would take for an ID number.
    return f"{code}-{no}"


def _ts(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


# ---------------------------------------------------------------- judging (pure)
def interface_threshold(target: str, th: Thresholds) -> str:
    if target == "delivery":
        rate = f"成功率警告 < {th.delivery_success_warn_pct:g}%"
    else:
        rate = f"成功率警告 < {th.interface_success_warn_pct:g}%，异常 < {th.interface_success_fail_pct:g}%"
    return f"{rate}；平均耗时警告 > {th.interface_latency_warn_ms:g} ms"


def judge_interface(target: str, stats: InterfaceStats | None, th: Thresholds) -> tuple[Status, float | None, str]:
    """(status, success % floored to 0.01, reason) for one target's calls in the window.

    No call at all is a WARN: the e-bill interfaces of a hospital are busy, and silence means the
    interface or its logging stopped (a site whose nights are quiet widens the window). Delivery
    (交付: SMS / WeChat to the payer) has a WARN level only: a bill that was not delivered is still
    valid and the payer can fetch it, while HIS, signing and finance failures stop or strand bills.
    """
    window = th.interface_window_minutes
    if stats is None or stats.calls == 0:
        return Status.WARN, None, f"最近 {window} 分钟窗口内没有调用记录（接口可能中断或未写日志）"
    pct = stats.success_pct
    shown = math.floor(pct * 100) / 100  # floored, so that a value shown as 99.50 never hides a WARN
    if target == "delivery":
        status = Status.WARN if pct < th.delivery_success_warn_pct else Status.OK
    else:
        status = grade(pct, th.interface_success_warn_pct, th.interface_success_fail_pct, higher_is_worse=False)
    mean = stats.mean_ms or 0.0
    why = []
    if status != Status.OK:
        why.append("成功率偏低")
    if mean > th.interface_latency_warn_ms:
        why.append("平均耗时过长")
        if status == Status.OK:
            status = Status.WARN
    p95 = f"{stats.p95_ms:.0f}" if stats.p95_ms is not None else "-"
    reason = (f"最近 {window} 分钟调用 {stats.calls} 次，成功 {stats.ok_calls} 次，失败 {stats.calls - stats.ok_calls} 次；"
              f"平均耗时 {mean:.0f} ms，P95 {p95} ms，最长 {stats.max_ms if stats.max_ms is not None else '-'} ms")
    if why:
        reason += "（" + "、".join(why) + "）"
    return status, shown, reason


def judge_backlog(backlog: FinanceBacklog, th: Thresholds) -> tuple[Status, str]:
    hours = f"{th.backlog_hours:g}"
    what = STAGE_ZH.get(backlog.stage, backlog.stage)
    if backlog.count == 0:
        return Status.OK, f"没有开票超过 {hours} 小时、{what}的票据"
    keys = [bill_key(b.bill_code, b.bill_no) for b in backlog.bills[:BACKLOG_KEYS_IN_REASON]]
    more = backlog.count - len(keys)
    reason = f"开票超过 {hours} 小时、{what}的票据 {backlog.count} 张"
    if backlog.failed:
        reason += f"（其中财政平台拒绝上传 {backlog.failed} 张）"
    if backlog.bills:
        reason += f"，最早开票于 {_ts(backlog.bills[0].issue_time)}"
    reason += "；票据代码-号码：" + "、".join(keys)
    if more > 0:
        reason += f" 等（另有 {more} 张；最早的 {len(backlog.bills)} 张见原始记录）"
    return Status.WARN, reason


def daily_use(level: StockLevel, now: datetime, use_days: int = STOCK_USE_DAYS) -> float:
    """Average numbers used a day: over the days since the first use in the window (at most
    use_days, at least one), so that a new year's code or a new point is not diluted by days on
    which it did not exist yet (DQ05: each year has its own code)."""
    if not level.issued or level.first_issue is None:
        return 0.0
    days = (now - level.first_issue).total_seconds() / 86400
    return level.issued / min(float(use_days), max(1.0, days))


def stock_threshold(th: Thresholds) -> str:
    return f"警告：低于开票点预警线或不足 {th.stock_min_days:g} 天用量；异常：在用号段已无剩余号码"


def judge_stock(level: StockLevel, now: datetime, th: Thresholds,
                use_days: int = STOCK_USE_DAYS) -> tuple[Status, str]:
    """Duties.md gives a WARN level only; an issuing point that cannot issue at all (no number
    left, or no ACTIVE segment although it issued bills lately) is a FAIL: its cashier is stuck."""
    use = daily_use(level, now, use_days)
    use_txt = f"近 {use_days} 天日均使用 {use:.1f} 张" if use else f"近 {use_days} 天没有使用"
    if level.bill_code is None:
        if level.issued:
            return Status.FAIL, f"启用中的开票点没有在用号段，无法开票（{use_txt}）"
        return Status.WARN, f"启用中的开票点没有在用号段（{use_txt}）"
    days_left = level.remaining / use if use else None
    left_txt = f"约可用 {days_left:.1f} 天" if days_left is not None else "可用天数无法估计"
    warn = level.warn_sheets
    reason = (f"剩余 {level.remaining} 张（{level.segments} 个在用号段），{use_txt}，{left_txt}；"
              f"预警线 {warn if warn is not None else '-'} 张")
    if level.remaining <= 0:
        return Status.FAIL, reason + "（在用号段已无剩余号码，无法开票）"
    why = []
    if warn is not None and level.remaining < warn:
        why.append("低于预警线")
    if days_left is not None and days_left < th.stock_min_days:
        why.append(f"不足 {th.stock_min_days:g} 天用量")
    if why:
        return Status.WARN, reason + "（" + "、".join(why) + "）"
    return Status.OK, reason


def finding_code(status: Status, *, stats: InterfaceStats | None = None, target: str = "",
                 level: StockLevel | None = None, th: Thresholds | None = None) -> Code:
    """The reason code of a judged interface (stats) or stock level (level): the first of the
    judge's reasons, in the judge's order."""
    if status is Status.OK:
        return Code.OK
    if level is not None:
        if level.bill_code is None:
            return Code.STOCK_NO_SEGMENT
        if level.remaining <= 0:
            return Code.STOCK_EXHAUSTED
        return Code.STOCK_BELOW_WARNING if level.warn_sheets is not None and level.remaining < level.warn_sheets \
            else Code.STOCK_DAYS_LOW
    if stats is None or stats.calls == 0:
        return Code.INTERFACE_NO_CALLS
    floor = th.delivery_success_warn_pct if target == "delivery" else th.interface_success_warn_pct
    return Code.INTERFACE_SUCCESS_LOW if stats.success_pct < floor else Code.INTERFACE_LATENCY_HIGH


# ---------------------------------------------------------------- tasks
def _base(site: Site, check: str) -> dict:
    return dict(check=check, site=site.site, host=database_host(site))


def _db_error(check: str, title: str):
    """check_task's ERROR record for a database that cannot be read (target: the database)."""
    return lambda site, *_a, **_k: dict(_base(site, check), title=title, target="database")


# check_task: a dropped or reset connection is retried once by Prefect; anything else (refused
# login, a query deadline) is reported at once as ERROR, never raised. No task timeout: the checks
# run in worker threads, where Prefect cannot interrupt a blocking query (it only warns, on every
# run); the database session's own deadlines bound a query stuck on locks (tasks/connect/database/).
@check_task("interface_calls", error_fields=_db_error("interface_calls", "接口调用"))
def interface_calls(site: Site, now: datetime | None = None) -> list[CheckResult]:
    """Success rate (value, %), mean and p95 latency of each of site.interface_targets over the
    last th.interface_window_minutes, one record per target."""
    th, started = site.thresholds, utcnow()
    until = site_now(site, now)
    since = until - timedelta(minutes=th.interface_window_minutes)
    base = _base(site, "interface_calls")
    with connect(site.database) as db:
        stats = {s.target: s for s in db.interface_stats(since, until)}
    out = []
    for target in site.interface_targets:
        s = stats.get(target)
        status, value, reason = judge_interface(target, s, th)
        raw = {"window": [since.isoformat(sep=" "), until.isoformat(sep=" ")], "success_code": SUCCESS,
               "stats": asdict(s) if s else None}
        out.append(CheckResult(**base, title=f"接口调用（{TARGET_ZH.get(target, target)}）", target=target,
                               value=value, unit="%", threshold=interface_threshold(target, th), status=status,
                               code=finding_code(status, stats=s, target=target, th=th),
                               reason=reason, raw=json.dumps(raw, ensure_ascii=False), started_at=started,
                               finished_at=utcnow()))
    return out


@check_task("finance_backlog", error_fields=_db_error("finance_backlog", "财政平台在途票据（未上传/未归档）"))
def finance_backlog(site: Site, now: datetime | None = None) -> list[CheckResult]:
    """在途票据: two records, bills not yet supervised (upload) and supervised but not archived
    (archive), issued more than th.backlog_hours ago; value = count, keys by bill code and number."""
    th, started = site.thresholds, utcnow()
    older_than = site_now(site, now) - timedelta(hours=th.backlog_hours)
    base = _base(site, "finance_backlog")
    with connect(site.database) as db:
        stages = db.finance_backlog(older_than, BACKLOG_KEYS_IN_RAW)
    out = []
    for b in stages:
        status, reason = judge_backlog(b, th)
        raw = {"issued_before": older_than.isoformat(sep=" "), "count": b.count, "failed": b.failed,
               "bills": [{"bill_code": x.bill_code, "bill_no": x.bill_no, "issue_time": x.issue_time.isoformat(sep=" "),
                          "upload_status": x.upload_status, "archive_status": x.archive_status} for x in b.bills]}
        out.append(CheckResult(**base, title=f"财政平台在途票据（{'未上传' if b.stage == 'upload' else '未归档'}）",
                               target=b.stage, value=b.count, unit="张",
                               threshold=f"警告 > 0 张（开票超过 {th.backlog_hours:g} 小时）", status=status,
                               code=Code.OK if status is Status.OK else Code.FINANCE_BACKLOG,
                               reason=reason, raw=json.dumps(raw, ensure_ascii=False), started_at=started,
                               finished_at=utcnow()))
    return out


@check_task("bill_stock", error_fields=_db_error("bill_stock", "票据库存"))
def bill_stock(site: Site, now: datetime | None = None) -> list[CheckResult]:
    """票据库存: remaining numbers (value) per issuing point and bill code, against the point's
    warning level and th.stock_min_days of its average use over the last 30 days."""
    th, started = site.thresholds, utcnow()
    at = site_now(site, now)
    base = _base(site, "bill_stock")
    with connect(site.database) as db:
        levels = db.stock_levels(at, STOCK_USE_DAYS)
    if not levels:
        return [CheckResult(**base, title="票据库存", target="ebill_stock", threshold=stock_threshold(th),
                            status=Status.WARN, code=Code.STOCK_NO_SEGMENT, reason="没有任何在用票据号段，也没有启用中的开票点",
                            started_at=started, finished_at=utcnow())]
    out = []
    for lv in levels:
        status, reason = judge_stock(lv, at, th)
        target = f"{lv.place_code}/{lv.bill_code}" if lv.bill_code else lv.place_code
        raw = {**asdict(lv), "first_issue": _ts(lv.first_issue), "daily_use": round(daily_use(lv, at), 2),
               "use_days": STOCK_USE_DAYS, "at": at.isoformat(sep=" ")}
        out.append(CheckResult(**base, title="票据库存", target=target, value=lv.remaining, unit="张",
                               threshold=stock_threshold(th), status=status, reason=reason,
                               code=finding_code(status, level=lv),
                               raw=json.dumps(raw, ensure_ascii=False), started_at=started, finished_at=utcnow()))
    return out
