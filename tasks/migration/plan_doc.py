"""Phase 2, plan: the 迁移方案 for the 方案评审 (QH row 13) — every command of every phase in order,
the measured throughput of a sample transfer and from it the estimated downtime, the rollback
path, the people — as a tasks/approvals Plan whose SHA-256 the approvals name.

The plan is a pure function of the site file and the plan's facts (sizes, throughput, plan id):
an execute or resumed run re-renders it from the stored facts and the current site file, and a
different SHA-256 means the site file changed after the review (refused).
"""
from __future__ import annotations

import json
import shlex
from typing import Any

from config.settings import Site
from tasks.approvals.plan import Plan, PlanStep, render_markdown
from tasks.migration import cross_engine, oracle, transfer
from tasks.migration.context import Migration
from tasks.migration.journal import PHASE_ZH

FIXED_OVERHEAD_S = 30    # stop, start, health waits, cut-over commands: ~12 s on the demo
# The row check (逐行比对) reads both sides through Python: measured on the demo, an 11.3 MiB database
# (52 321 rows a side) in 3.1 s with 2 shared cores; taken at 3 MiB/s of database size.
ROWCHECK_MIB_S = 3.0


def estimate_downtime(facts: dict[str, Any], freeze_window_s: float, rows_mib_s: float | None = None,
                      duplicate: bool = False) -> dict[str, float]:
    """Seconds per part of the window, from the sample's throughput: the dump, the copy, the
    restore and the verification each read or write the data once (taken at the sample's rate,
    which is the slowest link the plan measured), plus the freeze window, the data-quality suites
    as timed on the source when the plan was made, the row check at `rows_mib_s` of database size
    (None: verify_rows is off; an upper bound when verify_rows_max_table_rows leaves tables out),
    and a fixed overhead.

    `duplicate` (Oracle, oracle_method rman_duplicate): no dump, no copy of a file, no restore —
    RMAN copies the datafiles of the whole database (`database_bytes`, the allocated size of every
    datafile: more than the vendor's schema) once, source to target, in one part "duplicate" at the
    sample's rate (RMAN goes db1 -> db2 over Oracle Net, one hop fewer than the sample's way through
    the worker: the rate is a floor). The verification still reads the vendor's schema."""
    rate = max(float(facts.get("sample_mib_s") or 1.0), 0.01) * 1048576
    dump = float(facts.get("dump_bytes_estimate") or facts.get("data_bytes") or 0)
    data = float(facts.get("data_bytes") or 0)
    whole = float(facts.get("database_bytes") or data)
    parts = {"freeze": freeze_window_s, "dump": 0.0 if duplicate else dump / rate,
             "copy": 0.0 if duplicate else dump / rate, "restore": 0.0 if duplicate else data / rate,
             **({"duplicate": whole / rate} if duplicate else {}),
             "verify": data / rate, "rows": data / (rows_mib_s * 1048576) if rows_mib_s else 0.0,
             "quality": float(facts.get("quality_s") or 0), "overhead": FIXED_OVERHEAD_S}
    parts["total"] = sum(parts.values())
    return {k: round(v, 1) for k, v in parts.items()}


def _cmd(step_id: str, phase: str, host: str, argv: list[str], expect: str) -> PlanStep:
    return PlanStep(id=step_id, kind="command", target=host, text=shlex.join(argv), expect=expect, phase=phase)


def _check(step_id: str, phase: str, target: str, text: str, expect: str) -> PlanStep:
    return PlanStep(id=step_id, kind="check", target=target, text=text, expect=expect, phase=phase)


def _transfer_steps(m: Migration) -> list[PlanStep]:
    """Backup and transfer: a dump copied and restored, or (Oracle, rman_duplicate) RMAN alone."""
    cfg, src, tgt = m.cfg, m.cfg.source, m.cfg.target
    if cfg.across_engines:
        return cross_engine.plan_steps(m)
    if oracle.duplicates(cfg):
        statements = oracle.rman_statements(oracle.rman_duplicate_script(src.database.dsn, tgt.database.dsn,
                                                                         tgt.oracle_sid or ""))
        return [_check("backup:final", "backup", src.db_host, "不生成导出文件（oracle_method: rman_duplicate）",
                       "传输阶段由 RMAN 直接复制已停机冻结的源库"),
                _cmd("transfer:rman_duplicate", "transfer", tgt.db_host, transfer.restore_argv(m),
                     "RMAN DUPLICATE FROM ACTIVE DATABASE 复制整个数据库到以 NOMOUNT 启动的目标实例并打开；RMAN 语句："
                     + "；".join(statements))]
    return [_cmd("backup:final", "backup", src.db_host, transfer.dump_argv(m), "源库最终备份（停机状态，SHA-256）"),
            _cmd("transfer:copy", "transfer", f"{src.db_host}->{tgt.db_host}",
                 ["cat", "--", transfer.dump_path(m, "source")] + ["|"] + ["cat", ">", transfer.dump_path(m, "target")],
                 "经 ebill-ops 工作站以 SSH 中转复制备份文件，两端 SHA-256 比对"),
            _cmd("transfer:restore", "transfer", tgt.db_host, transfer.restore_argv(m), "在目标库恢复全部数据")]


def build_plan(m: Migration, facts: dict[str, Any], requested_by: str) -> Plan:
    cfg, site = m.cfg, m.site
    m.facts.setdefault("plan_id", facts.get("plan_id"))
    src, tgt = cfg.source, cfg.target
    steps = [
        _check("preflight:all", "preflight", f"{src.db_host},{tgt.db_host}",
               "版本、数据量与目标剩余空间、端口、时钟、目标库为空、表空间、应用健康、近期备份恢复验证",
               f"只读检查；剩余空间 ≥ {cfg.free_space_ratio:g} 倍数据量"
               + (f" + 预留 {cfg.free_space_reserve_gib:g} GiB" if cfg.free_space_reserve_gib else "")
               + f"，时钟差 ≤ {cfg.max_clock_skew_s:g} 秒"),
        _check("approval:plan_review", "plan", "审批", "迁移方案评审（第一次审批）", "方案 SHA-256 经非申请人审批"),
        _check("approval:downtime", "freeze", "审批", "停机窗口审批（第二次审批）", "批准开始停机"),
        _cmd("freeze:app_stop", "freeze", src.app_host, src.app_stop, "停止电子票据应用（停机开始）"),
        _check("freeze:no_new_bills", "freeze", "source db", f"最新票据时间在 {cfg.freeze_window_s:g} 秒内不变",
               "确认应用停止后不再有新票据"),
        *_transfer_steps(m),
        _check("verify:all", "verify", "source db <-> target db",
               ("每张表：表名清单（不区分大小写）、行数（跨引擎：库内内容指纹不可比，不比较）" if cfg.across_engines else
                "每张表：对象清单、行数、库内内容指纹") + ("、按主键逐行比对（规范文本 SHA-256）" if cfg.verify_rows else "")
               + "；抽取票据逐字段比对；目标库数据质量规则（DQ01–DQ22）",
               "应用已停止：两边完全一致"),
        _check("approval:cutover", "cutover", "审批", "切换审批（第三次审批）", "批准把应用切换到新服务器"
               + ("，及冒烟测试中在目标库开具并冲红一张测试票据" if tgt.smoke_test_bill else "")),
        *[_cmd(f"cutover:{i + 1}", "cutover", c.host, c.argv, c.expect) for i, c in enumerate(cfg.cutover_steps)],
        _check("smoke:health", "smoke", tgt.app_host, "新服务器上电子票据各功能健康检查；应用连接的数据库为目标库",
               "全部返回 2xx（停机结束）"),
        *([_check("smoke:test_bill", "smoke", tgt.app_host,
                  f"POST {tgt.smoke_test_bill.issue_url}；POST {tgt.smoke_test_bill.red_flush_url}",
                  "开具一张测试票据（迁移冒烟测试）并冲红；两张票据从目标库读回（写入目标库）")]
          if tgt.smoke_test_bill else []),
        _check("smoke:inspection", "smoke", ",".join(cfg.after_hosts), "对新服务器运行完整巡检目录", "巡检无异常"),
        _check("approval:rollback", "rollback", "审批", "回退审批（仅在停机后任一阶段失败时）", "批准回退到原服务器"),
        *[_cmd(f"rollback:{i + 1}", "rollback", c.host, c.argv, c.expect) for i, c in enumerate(cfg.rollback_steps)],
        _check("rollback:health", "rollback", src.app_host, "原服务器应用健康检查", "回退后原系统恢复服务"),
    ]
    people = [f"{p.role}：{p.name}" for p in cfg.people]
    return Plan(site=site.site, duty="migration", title=f"{site.name} 服务器迁移方案", requested_by=requested_by,
                steps=steps, facts={**facts, "people": people, "source": f"{src.db_host}/{src.app_host}",
                                    "target": f"{tgt.db_host}/{tgt.app_host}",
                                    "estimate_s": estimate_downtime(facts, cfg.freeze_window_s,
                                                                  ROWCHECK_MIB_S if cfg.verify_rows else None,
                                                                  duplicate=oracle.duplicates(cfg))})


def render_plan(plan: Plan) -> str:
    """The 迁移方案 as the 方案评审 reads it: the plan's steps, then the figures and the people."""
    f = plan.facts
    est = f.get("estimate_s", {})
    by_phase: dict[str, list[str]] = {}
    for s in plan.steps:
        by_phase.setdefault(s.phase, []).append(f"`{s.id}`（{s.target}）：{s.expect}")
    lines = [render_markdown(plan), "", "## 迁移阶段", ""]
    for phase, items in by_phase.items():
        lines.append(f"### {PHASE_ZH.get(phase, phase)}")
        lines += [f"- {i}" for i in items] + [""]
    lines += ["## 测算", "",
              f"- 源库数据量：{float(f.get('data_bytes') or 0) / 1048576:.1f} MiB；预计备份文件："
              f"{float(f.get('dump_bytes_estimate') or 0) / 1048576:.1f} MiB",
              f"- 样本传输（{f.get('sample_mib', '?')} MiB）实测吞吐：{f.get('sample_mib_s', '?')} MiB/s",
              f"- 预计停机时间：约 {est.get('total', '?')} 秒（冻结观察 {est.get('freeze')}、"
              + (f"RMAN DUPLICATE 复制整个数据库 {est['duplicate']}（{float(f.get('database_bytes') or f.get('data_bytes') or 0) / 1048576:.1f} MiB，"
                 "无导出、文件复制与导入）、" if "duplicate" in est else
                 f"备份 {est.get('dump')}、复制 {est.get('copy')}、恢复 {est.get('restore')}、")
              + f"校验 {est.get('verify')}、逐行比对 {est.get('rows', 0)}、数据质量规则 {est.get('quality')}、"
              f"启停与切换 {est.get('overhead')} 秒）",
              "", "## 回退路径", "",
              "停机后任一阶段失败：经回退审批后执行回退步骤——停止新服务器上的应用，确认应用数据源仍指向未改动的原数据库，"
              "在原服务器上启动应用并做健康检查。原数据库在整个迁移过程中只读（最终备份），不做任何修改。", "",
              "## 人员", ""] + [f"- {p}" for p in f.get("people", [])] + [""]
    return "\n".join(lines)


def plan_key(site: str, plan: Plan) -> str:
    return f"{site}/migration/_plans/{plan.facts.get('plan_id')}_{plan.sha256()}"


def store_plan(store, plan: Plan) -> str:
    key = plan_key(plan.site, plan)
    store.put_if_absent(key + ".json", json.dumps(plan.model_dump(mode="json"), ensure_ascii=False, indent=1).encode())
    store.put_if_absent(key + ".md", render_plan(plan).encode())
    return key


def load_plan(store, site: Site, sha: str | None = None) -> Plan | None:
    """The stored plan with SHA-256 `sha` (a prefix will do), or the newest plan of the site."""
    names = sorted(o.object_name for o in store.list(f"{site.site}/migration/_plans/")
                   if o.object_name.endswith(".json") and not o.object_name.endswith(".points.json"))
    if sha:
        names = [n for n in names if n.rsplit("_", 1)[-1].startswith(sha)]
    return Plan.model_validate_json(store.get(names[-1])) if names else None
