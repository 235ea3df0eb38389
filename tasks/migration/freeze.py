"""Phase 3, freeze: stop the application with its configured command and confirm that no new
bills arrive (the newest bill's time and the bill count stand still over a short window). The
downtime starts when the stop command is issued."""
from __future__ import annotations

import time

from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun


def newest_bill(m: Migration) -> tuple[str, int]:
    cfg = m.cfg
    with db.side_session(cfg, cfg.source, snapshot=False) as fetch:
        row = db.side_one(fetch, cfg.source, "newest_bill")
    return str(row.get("newest")), int(row.get("bills") or 0)


def stop_application(m: Migration, ph: PhaseRun) -> bool:
    cfg = m.cfg
    ph.facts["downtime_started_at"] = utcnow().isoformat()
    res = ph.run(m.session(cfg.source.app_host), cfg.source.app_host, cfg.source.app_stop, timeout=600)
    ok = res.exit_code == 0
    ph.check("停止应用", Status.OK if ok else Status.FAIL,
             f"已执行停止命令（退出码 0）：{res.stdout.strip()[-200:]}" if ok else
             f"停止命令退出码 {res.exit_code}：{res.stderr.strip()[-300:]}", host=cfg.source.app_host,
             code="" if ok else Code.MIGRATION_APP_COMMAND_FAILED)
    if ok and cfg.source.app_status:
        st = ph.run(m.session(cfg.source.app_host), cfg.source.app_host, cfg.source.app_status, timeout=120)
        if st.exit_code == 0:
            ph.check("停止应用", Status.FAIL, f"停止后状态命令仍报告运行中：{st.stdout.strip()[-200:]}",
                     host=cfg.source.app_host, code=Code.MIGRATION_APP_COMMAND_FAILED)
            return False
    return ok


def bills_stand_still(m: Migration, ph: PhaseRun) -> None:
    """Read the newest bill and the count, wait the configured window, read again."""
    cfg = m.cfg
    try:
        first = newest_bill(m)
        began = time.monotonic()
        time.sleep(cfg.freeze_window_s)   # the observation window itself, not a synchronisation
        second = newest_bill(m)
    except Exception as exc:  # noqa: BLE001
        ph.check("确认无新票据", Status.ERROR, f"{type(exc).__name__}: {exc}")
        return
    waited = time.monotonic() - began
    same = first == second
    ph.note(cfg.source.db_host, db.SQL[cfg.source.engine]["newest_bill"].format(schema=cfg.source.schema),
            f"t0: newest {first[0]}, {first[1]} bills; t0+{waited:.1f}s: newest {second[0]}, {second[1]} bills", 0, waited)
    ph.facts.update(frozen_newest_bill=second[0], frozen_bills=second[1])
    ph.check("确认无新票据", Status.OK if same else Status.FAIL,
             f"{waited:.0f} 秒内最新票据时间（{second[0]}）与票据数（{second[1]}）不变" if same else
             f"应用停止后仍有新票据：{first} -> {second}（还有其他写入方？停止迁移，检查后回退）",
             value=second[1] - first[1], unit="张新票据", threshold="0", host=cfg.source.db_host,
             code="" if same else Code.MIGRATION_BILLS_ARRIVING)


def run(m: Migration, ph: PhaseRun) -> None:
    if stop_application(m, ph):
        bills_stand_still(m, ph)
