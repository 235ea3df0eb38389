"""The report's charts as PNG (matplotlib, Agg): availability per day, findings per month, and disk
and tablespace usage with the date each reaches its threshold at the current rate.

Chinese labels need a CJK font: the first of CJK_FONTS that fontconfig knows is used; without one
the labels fall back to English and `font_note()` says so in the report (install fonts-noto-cjk).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")   # no display on a worker
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from tasks.report.availability import GOAL_PCT, Availability  # noqa: E402
from tasks.report.collect import Bundle  # noqa: E402

CJK_FONTS = ("Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC", "SimHei")
GROWTH_CHECKS = {"disk_usage": "磁盘", "tablespace_usage": "表空间"}
HORIZON_DAYS = 5 * 365   # past this a forecast from one period's rate says nothing
_THRESHOLD = re.compile(r"(警告|异常)\s*≥\s*([\d.]+)")
COLORS = {"WARN": "#e6a700", "FAIL": "#d62728", "ERROR": "#7f0000"}


def _cjk_font() -> str | None:
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in CJK_FONTS if n in names), None)


FONT = _cjk_font()


def font_note() -> str:
    return "" if FONT else "图表未找到中文字体（请安装 fonts-noto-cjk），图中标注改用英文。"


def _t(zh: str, en: str) -> str:
    return zh if FONT else en


def _png(fig) -> bytes:
    buf = BytesIO()
    # metadata without the software/date stamp: the same data gives the same bytes
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _figure(width: float = 8, height: float = 3.4):
    if FONT:
        plt.rcParams["font.family"] = [FONT]
    plt.rcParams["axes.unicode_minus"] = False
    return plt.subplots(figsize=(width, height))


def availability_chart(av: Availability) -> bytes:
    fig, ax = _figure()
    measured = {d: v["pct"] for d, v in av.per_day.items() if v["pct"] is not None}
    days = [datetime.fromisoformat(d) for d in measured]
    pcts = list(measured.values())
    if days:
        ax.plot(days, pcts, marker="o", color="#1f77b4", label=_t("可用率", "availability"))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    else:
        ax.text(0.5, 0.5, _t("无监测数据", "no watch data"), ha="center", va="center", transform=ax.transAxes)
    ax.axhline(GOAL_PCT, color="#d62728", linestyle="--", label=_t(f"目标 {GOAL_PCT:g}%", f"goal {GOAL_PCT:g}%"))
    ax.set_ylim(min([90.0] + [p for p in pcts if p is not None]) - 1, 100.5)
    src = {"watch": _t("接口与功能监测", "watch"), "inspection_samples": _t("巡检抽样（非持续监测）", "inspection samples"),
           "none": _t("无数据", "none")}[av.source]
    ax.set_title(_t(f"电子票据功能每日可用率（来源：{src}）", f"e-bill functions, availability per day ({src})"))
    ax.set_ylabel("%")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


def findings_chart(per_month: dict[str, dict[str, int]]) -> bytes:
    fig, ax = _figure()
    months = list(per_month)
    bottom = [0] * len(months)
    for status in ("WARN", "FAIL", "ERROR"):
        vals = [per_month[m].get(status, 0) for m in months]
        label = {"WARN": _t("警告", "WARN"), "FAIL": _t("异常", "FAIL"), "ERROR": _t("无法检查", "ERROR")}[status]
        ax.bar(months, vals, bottom=bottom, color=COLORS[status], label=label)
        bottom = [a + b for a, b in zip(bottom, vals)]
    if not months:
        ax.text(0.5, 0.5, _t("本期无发现", "no findings"), ha="center", va="center", transform=ax.transAxes)
    ax.set_title(_t("每月新发现的问题（按最严重状态）", "findings opened per month (worst status)"))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def growth_series(bundles: list[Bundle]) -> dict[tuple[str, str], dict]:
    """Usage per disk mount and tablespace over the period's runs, with its WARN/FAIL thresholds."""
    series: dict[tuple[str, str], dict] = {}
    for b in bundles:
        for r in b.results:
            if r.get("check") in GROWTH_CHECKS and isinstance(r.get("value"), (int, float)):
                s = series.setdefault((r["check"], f"{r.get('host') or ''} {r.get('target', '')}".strip()),
                                      {"points": [], "thresholds": {}})
                s["points"].append((b.started_at, float(r["value"])))
                for kind, val in _THRESHOLD.findall(r.get("threshold", "")):
                    s["thresholds"]["warn" if kind == "警告" else "fail"] = float(val)
    return series


def reach_date(points: list[tuple[datetime, float]], level: float) -> tuple[float, datetime | None]:
    """The rate (points per day, least squares over the period) and when it reaches `level` at that
    rate; None when the usage is not growing."""
    if len(points) < 2:
        return 0.0, None
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    rate = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    if rate <= 1e-9:
        return rate, None
    last_t, last_v = points[-1]
    if last_v >= level:
        return rate, last_t
    return rate, last_t + timedelta(days=(level - last_v) / rate)


def growth_rows(series: dict[tuple[str, str], dict], tz: str) -> list[dict]:
    rows = []
    for (check, item), s in sorted(series.items()):
        pts = s["points"]
        warn = s["thresholds"].get("warn", 80.0)
        rate, at = reach_date(pts, warn)
        if at is not None and (at - pts[-1][0]).days > HORIZON_DAYS:
            reaches = "5 年内不会达到"
        else:
            reaches = at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d") if at else "按当前速度不会达到"
        rows.append({"kind": GROWTH_CHECKS[check], "item": item, "first": pts[0][1], "last": pts[-1][1], "runs": len(pts),
                     "rate_per_30d": round(rate * 30, 3), "threshold": warn,
                     "reaches": reaches})
    return rows


def growth_chart(series: dict[tuple[str, str], dict], rows: list[dict]) -> bytes:
    fig, ax = _figure(8, 4)
    for (check, item), s in sorted(series.items()):
        ts, vs = zip(*s["points"])
        ax.plot(ts, vs, marker=".", label=f"{_t(GROWTH_CHECKS[check], check)} {item.split('/')[-1] or item}")
    warn = min((r["threshold"] for r in rows), default=80.0)
    ax.axhline(warn, color="#e6a700", linestyle="--", label=_t(f"警告阈值 {warn:g}%", f"warn {warn:g}%"))
    if not series:
        ax.text(0.5, 0.5, _t("无巡检数据", "no inspection data"), ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.set_title(_t("磁盘与表空间使用率（阈值到达日期见表）", "disk and tablespace usage"))
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)
