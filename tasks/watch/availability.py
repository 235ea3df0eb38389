"""A day's availability from its probe records (pure: the sealed bundle's availability.json and
the 日运行表's rows; unit-tested without any server).

Per e-bill function: a probe is *up* when its health call answered 2xx (OK), *down* when it did not
(FAIL), *unknown* otherwise (SKIPPED/ERROR: not measured). availability_pct = up / (up + down);
down_minutes = down probes × the probe interval. Consecutive down probes make one **outage**,
from the first down probe to the first probe after it that was up (or, at the end of the probed
stretch, the last down probe plus one interval) — the rows of the maintenance ledger (维护维修台账).
coverage_pct says how much of the day was probed at all (probes seen / probes planned): a watch
that was stopped leaves its hours unobserved, not counted as available.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from config.settings import EBILL_FUNCTIONS_ZH, WatchConfig
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status
from tasks.inspection.health import function_target

AVAILABILITY_SCHEMA = "ebill-ops/watch-availability/1"
UP, DOWN = Status.OK.value, Status.FAIL.value


def _t(local: str) -> datetime:
    return datetime.strptime(local, "%Y-%m-%d %H:%M:%S")


def _outages(points: list[tuple[str, str, dict]], interval_s: int) -> list[dict]:
    """points: (local time, status, item) in time order, of one function."""
    out, cur = [], None
    for local, status, item in points:
        if status == DOWN:
            if cur is None:
                cur = {"from": local, "to": None, "probes": 0, "code": item.get("code", ""),
                       "reason": item.get("reason", "")}
            cur["probes"] += 1
            cur["_last"] = local
        elif status == UP and cur is not None:
            cur["to"], cur["ended"] = local, "recovered"
            out.append(cur)
            cur = None
    if cur is not None:
        cur["to"] = (_t(cur["_last"]) + timedelta(seconds=interval_s)).strftime("%Y-%m-%d %H:%M:%S")
        cur["ended"] = "still_down"  # at the last probe of the day: the next day's bundle goes on
        out.append(cur)
    for o in out:
        o.pop("_last", None)
        o["minutes"] = round((_t(o["to"]) - _t(o["from"])).total_seconds() / 60, 1)
    return out


def availability(records: list[dict], day: str, site: str, interval_s: int) -> dict:
    """availability.json of one day (records: that day's probe records in time order)."""
    planned = int(86400 // interval_s)
    functions = {}
    for key in EBILL_FUNCTIONS_ZH:
        points = [(r["local"], i["status"], i) for r in records for i in r["items"] if i.get("function") == key]
        up = sum(1 for _, s, _ in points if s == UP)
        down = sum(1 for _, s, _ in points if s == DOWN)
        functions[key] = {
            "name_zh": EBILL_FUNCTIONS_ZH[key], "probes": len(points), "up": up, "down": down,
            "unknown": len(points) - up - down,
            "availability_pct": round(100 * up / (up + down), 3) if up + down else None,
            "down_minutes": round(down * interval_s / 60, 1),
            "outages": _outages(points, interval_s),
        }
    others: dict[str, dict] = {}
    for r in records:
        for i in r["items"]:
            if "function" in i:
                continue
            o = others.setdefault(i["key"], {"title": i["title"], "target": i["target"], "probes": 0,
                                             "by_status": {}, "worst": UP, "last": None})
            o["probes"] += 1
            o["by_status"][i["status"]] = o["by_status"].get(i["status"], 0) + 1
            if Status(i["status"]).rank > Status(o["worst"]).rank:
                o["worst"], o["worst_code"], o["worst_reason"] = i["status"], i.get("code", ""), i.get("reason", "")
            o["last"] = {"at": r["local"], "status": i["status"], "value": i.get("value"), "reason": i.get("reason", "")}
    return {
        "schema": AVAILABILITY_SCHEMA, "site": site, "day": day, "interval_s": interval_s,
        "probes": len(records), "planned_probes": planned,
        "coverage_pct": round(100 * min(len(records), planned) / planned, 2),
        "first_probe": records[0]["local"] if records else None, "last_probe": records[-1]["local"] if records else None,
        "functions": functions, "interfaces": {k: v for k, v in others.items() if k.startswith("interface:")},
        "stock": {k: v for k, v in others.items() if k.startswith("stock:")},
        "other": {k: v for k, v in others.items() if not k.startswith(("interface:", "stock:"))},
    }


def day_results(av: dict, cfg: WatchConfig) -> list[CheckResult]:
    """The day judged: availability per function against cfg.availability_min_pct, coverage, and
    each interface/stock item at the worst status it showed during the day."""
    site, floor = av["site"], cfg.availability_min_pct
    out = [CheckResult(
        check="watch_coverage", title="接口监控覆盖率（日）", site=site, target="watch",
        value=av["coverage_pct"], unit="%", threshold=f"低于 {cfg.coverage_warn_pct:g}% 为警告",
        status=Status.OK if av["coverage_pct"] >= cfg.coverage_warn_pct else Status.WARN,
        code=Code.OK if av["coverage_pct"] >= cfg.coverage_warn_pct else Code.WATCH_COVERAGE_LOW,
        reason=f"计划探测 {av['planned_probes']} 次，实际 {av['probes']} 次"
               + (f"（{av['first_probe'][11:16]} 至 {av['last_probe'][11:16]}）" if av["probes"] else "（全天无探测记录）"))]
    for key, f in av["functions"].items():
        base = dict(check="watch_availability", title="电子票据功能可用率（日）", site=site, target=function_target(key),
                    unit="%", threshold=f"≥ {floor:g}%（MZ 一.18）")
        if f["availability_pct"] is None:
            out.append(CheckResult(**base, status=Status.SKIPPED, code=Code.NO_DATA,
                                   reason=f"当天没有可判断的探测结果（探测 {f['probes']} 次）"))
            continue
        ok = f["availability_pct"] >= floor
        outages = "；".join(f"{o['from'][11:16]}–{o['to'][11:16]}（{o['minutes']:g} 分钟）" for o in f["outages"])
        out.append(CheckResult(**base, value=f["availability_pct"], status=Status.OK if ok else Status.FAIL,
                               code=Code.OK if ok else Code.AVAILABILITY_LOW,
                               reason=f"探测 {f['probes']} 次，可用 {f['up']} 次，不可用 {f['down']} 次，"
                                      f"累计不可用约 {f['down_minutes']:g} 分钟" + (f"；中断：{outages}" if outages else "")))
    for group, title in (("interfaces", "接口调用（日）"), ("stock", "票据库存（日）"), ("other", "监控项（日）")):
        for key, o in av[group].items():
            counts = "，".join(f"{Status(s).label_zh} {n} 次" for s, n in sorted(o["by_status"].items(),
                                                                          key=lambda kv: Status(kv[0]).rank))
            reason = f"探测 {o['probes']} 次：{counts}"
            if o["worst"] != UP:
                reason += f"；最差一次：{o.get('worst_reason', '')}"
            out.append(CheckResult(check=f"watch_{group}", title=f"{o['title']}（日）" if group != "stock" else title,
                                   site=site, target=o["target"], value=o["by_status"].get(UP, 0), unit="次正常",
                                   status=Status(o["worst"]), code=o.get("worst_code") or Code.OK.value, reason=reason))
    return out
