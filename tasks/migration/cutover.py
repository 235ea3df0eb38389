"""Phases 7-9: cut-over (the configured steps: rewrite the application's datasource, start it
against the target), smoke (the e-bill functions' health calls answer from the target database;
the inspection catalogue of the new servers runs in the flow), and the rollback path (the
configured steps: stop the new application, confirm the old datasource, start the application on
the untouched source, health). The downtime ends when the application answers again."""
from __future__ import annotations

import time
from datetime import datetime

import httpx

from config.migration import MigrationSide, RunbookCommand
from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun


def run_steps(m: Migration, ph: PhaseRun, steps: list[RunbookCommand], title: str) -> bool:
    for i, c in enumerate(steps, 1):
        res = ph.run(m.session(c.host), c.host, c.argv, timeout=c.timeout_s)
        if res.exit_code != 0:
            ph.check(f"{title}第 {i} 步", Status.FAIL, f"{c.expect or '命令'}失败（退出码 {res.exit_code}）："
                     f"{(res.stderr or res.stdout).strip()[-300:]}", host=c.host, code=Code.MIGRATION_STEP_FAILED)
            return False
    ph.check(f"{title}步骤", Status.OK, f"{len(steps)} 步均已执行（退出码 0）", value=len(steps), unit="步")
    return True


def wait_healthy(urls: dict[str, str], timeout_s: float) -> tuple[bool, dict, str]:
    """Poll the first health URL until it answers 2xx (the application starting up), at most
    timeout_s; returns (healthy, its JSON body or {}, the last error)."""
    deadline = time.monotonic() + timeout_s
    url = next(iter(urls.values()))
    last = ""
    with httpx.Client(timeout=10, trust_env=False, follow_redirects=False) as client:
        while True:
            try:
                r = client.get(url)
                if 200 <= r.status_code < 300:
                    try:
                        return True, r.json(), ""
                    except ValueError:
                        return True, {}, ""
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            if time.monotonic() > deadline:
                return False, {}, last
            time.sleep(0.5)   # the application is starting: ask again shortly


def end_downtime(m: Migration, ph: PhaseRun, side: MigrationSide, host: str) -> bool:
    """The application on `side` answers: the downtime ends now; then every health URL, and the
    database it answers from must be `side`'s (a datasource left pointing elsewhere is a FAIL)."""
    from tasks.migration.preflight import app_health

    began = time.monotonic()
    healthy, body, last = wait_healthy(side.health_urls, m.cfg.health_timeout_s)
    ended = utcnow()
    ph.note(host, f"GET {next(iter(side.health_urls.values()))} (until 2xx, ≤ {m.cfg.health_timeout_s:g} s)",
            str(body)[:500] or last, 0 if healthy else 1, time.monotonic() - began)
    if not healthy:
        ph.check("应用恢复服务", Status.FAIL, f"{m.cfg.health_timeout_s:g} 秒内健康检查未通过：{last}", host=host,
                 code=Code.MIGRATION_APP_UNHEALTHY)
        return False
    start = m.facts.get("downtime_started_at")
    if start:
        ph.facts["downtime_ended_at"] = ended.isoformat()
        ph.facts["downtime_s"] = round((ended - datetime.fromisoformat(start)).total_seconds(), 1)
    ok = app_health(m, ph, side.health_urls, "应用各功能健康检查", host)
    if "system_identifier" in body and side.engine == "postgresql":   # read in this side's own dialect
        with db.side_session(m.cfg, side, snapshot=False) as fetch:
            want = str(db.side_one(fetch, side, "identity").get("ident"))
        same = str(body.get("system_identifier")) == want
        ph.check("应用连接的数据库", Status.OK if same else Status.FAIL,
                 f"应用报告的数据源 {body.get('datasource')}（系统标识 {body.get('system_identifier')}）"
                 + ("即预期数据库" if same else f"，不是预期数据库（{want}）"), host=host,
                 code="" if same else Code.MIGRATION_WRONG_DATASOURCE)
        ok = ok and same
    return ok


def downtime_record(m: Migration, ph: PhaseRun) -> None:
    """The measured downtime against the plan's estimate (over the estimate: WARN, said so)."""
    measured = ph.facts.get("downtime_s")
    estimate = (m.facts.get("estimate_s") or {}).get("total")
    if measured is None:
        return
    over = estimate is not None and measured > estimate
    ph.check("停机时间", Status.WARN if over else Status.OK,
             f"实测停机 {measured:.0f} 秒（停止应用至新系统健康）；方案预计 {estimate} 秒"
             + ("，超出预计" if over else ""), value=measured, unit="秒",
             threshold=f"≤ {estimate} 秒（方案预计）" if estimate else "", code=Code.MIGRATION_DOWNTIME_OVER if over else "")


def cutover(m: Migration, ph: PhaseRun) -> None:
    run_steps(m, ph, m.cfg.cutover_steps, "切换")


def smoke_health(m: Migration, ph: PhaseRun) -> None:
    if end_downtime(m, ph, m.cfg.target, m.cfg.target.app_host):
        downtime_record(m, ph)


def rollback(m: Migration, ph: PhaseRun) -> None:
    if run_steps(m, ph, m.cfg.rollback_steps, "回退"):
        end_downtime(m, ph, m.cfg.source, m.cfg.source.app_host)
