"""Phase 1, preflight (read only): can this migration start?

Versions of both sides, the data size against the target's free space (RMAN DUPLICATE: the whole
database's datafiles), the ports, the servers' clocks, an empty target database with the source's
tablespaces (Oracle Data Pump: no user of the canonical views' owner yet, the checks' accounts there,
tasks/migration/preflight_oracle.py), the application's health, and a PASSED backup verification of
the source within N days from the evidence store. Every item is a record; one that is not OK stops
the migration before anything changes.
"""
from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta, timezone

import httpx

from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db, oracle, preflight_oracle
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun


def _major(num: str | None, dialect: str) -> int:
    if not num:
        return 0
    return int(str(num)) // 10000 if dialect == "postgresql" else int(str(num).split(".")[0])


def space_needed(data_bytes: int, ratio: float, reserve_gib: float = 0) -> float:
    """The restore needs the data once, plus indexes rebuilt and the dump beside it (ratio x), and
    the hospital's headroom must still be free afterwards (reserve)."""
    return data_bytes * ratio + reserve_gib * 1024 ** 3


def enough_space(data_bytes: int, free_bytes: int, ratio: float, reserve_gib: float = 0) -> bool:
    return free_bytes >= space_needed(data_bytes, ratio, reserve_gib)


def _size(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GiB" if n >= 1024 ** 3 else f"{n / 1048576:.1f} MiB"


def space_reason(data_bytes: int, free_bytes: int, mount: str, data_dir: str, ratio: float, reserve_gib: float,
                 what: str = "数据量") -> str:
    """The free-space record's reason: what was measured where, what is needed and, when short, what
    to do. `what`: what the data size is (the vendor's schema, or RMAN DUPLICATE's whole database)."""
    need = space_needed(data_bytes, ratio, reserve_gib)
    rule = f"{what} {_size(data_bytes)} 的 {ratio:g} 倍（{_size(data_bytes * ratio)}）" + \
        (f"加预留 {reserve_gib:g} GiB，共 {_size(need)}" if reserve_gib else "")
    where = f"目标库数据目录 {data_dir} 所在文件系统 {mount} 可用 {_size(free_bytes)}"
    if free_bytes >= need:
        return f"{where}，需要{rule}：足够"
    return (f"{where}，不足：需要{rule}，还差 {_size(need - free_bytes)}；迁移拒绝开始（应用未停止）。"
            f"请扩容目标服务器的数据盘或清理 {mount} 后重新运行迁移前检查")


def auxiliary_instance(m: Migration, ph: PhaseRun) -> dict[str, str]:
    """RMAN DUPLICATE's target: an instance started NOMOUNT, read over SSH as SYSDBA (no database
    to log in to yet): {"status", "version", "num"}."""
    cfg = m.cfg
    res = ph.run(m.session(cfg.target.db_host), cfg.target.db_host, oracle.auxiliary_instance_argv(cfg), timeout=120)
    got = oracle.parse_instance(res.stdout)
    return {**got, "num": got["version"]}


def versions_and_size(m: Migration, ph: PhaseRun) -> None:
    """Each side read in its own dialect (an Oracle source, a PostgreSQL-family target across engines)."""
    cfg, src, tgt = m.cfg, m.cfg.source, m.cfg.target
    rman, users = oracle.duplicates(cfg), None
    try:
        with db.side_session(cfg, src) as fetch:
            src_v = db.side_one(fetch, src, "version")
            size = int(db.side_one(fetch, src, "size").get("bytes") or 0)
            src_spaces = {r["name"] for r in fetch(db.statement(src.engine, "tablespaces", src.schema))}
            if rman:  # RMAN copies the whole database: the plan's estimate (plan_doc.estimate_downtime)
                ph.facts["database_bytes"] = int(db.side_one(fetch, src, "database_size").get("bytes") or 0)
        if rman:
            tgt_v = auxiliary_instance(m, ph)
            objects, tgt_spaces = 0 if tgt_v["status"] == "STARTED" else 1, src_spaces   # DUPLICATE creates them
        else:
            with db.side_session(cfg, tgt) as fetch:
                tgt_v = db.side_one(fetch, tgt, "version")
                objects = int(db.side_one(fetch, tgt, "user_tables").get("n") or 0)
                tgt_spaces = {r["name"] for r in fetch(db.statement(tgt.engine, "all_tablespaces", tgt.schema))}
                users = preflight_oracle.read(fetch, m)   # Data Pump: the views' owner, the checks' accounts
        if cfg.across_engines:   # ora2pg creates no tablespace unless told (USE_TABLESPACE 0): not compared
            tgt_spaces = src_spaces
    except Exception as exc:  # noqa: BLE001 - the record says which side could not be read
        ph.check("数据库版本与数据量", Status.ERROR, f"无法读取数据库：{type(exc).__name__}: {exc}",
                 code=Code.DATABASE_UNREACHABLE)
        return
    ph.facts.update(source_version=src_v.get("version"), target_version=tgt_v.get("version"), data_bytes=size)
    s_major, t_major = _major(src_v.get("num"), src.engine), _major(tgt_v.get("num"), tgt.engine)
    ok = cfg.across_engines or t_major >= s_major   # across engines the numbers are not comparable
    ph.check("数据库版本", Status.OK if ok else Status.FAIL,
             f"源库 {src_v.get('version')}；目标库 {tgt_v.get('version')}" + ("" if ok else "：目标库版本低于源库，不能恢复")
             + (f"（跨引擎迁移 {src.engine} -> {tgt.engine}：版本号不可比，不比较）" if cfg.across_engines else ""),
             value=f"{s_major} -> {t_major}", code="" if ok else Code.MIGRATION_VERSION_MISMATCH)
    if rman:
        st = tgt_v["status"]
        ph.check("目标库为空", Status.OK if objects == 0 else Status.FAIL,
                 f"目标实例 {cfg.target.oracle_sid} 以 NOMOUNT 启动（STARTED），尚无数据库：RMAN DUPLICATE 将创建整个数据库"
                 if objects == 0 else f"目标实例 {cfg.target.oracle_sid} 状态为 {st}：RMAN DUPLICATE 只复制到以 NOMOUNT "
                 f"启动、尚无数据库的实例，拒绝覆盖（请 DBA 确认后以同名 pfile 执行 startup nomount）",
                 value=st, threshold="STARTED（NOMOUNT）", target=cfg.target.database.dsn,
                 code="" if objects == 0 else Code.MIGRATION_TARGET_NOT_EMPTY)
    else:
        ph.check("目标库为空", Status.OK if objects == 0 else Status.FAIL,
                 "目标库没有任何表、视图或序列" if objects == 0 else
                 f"目标库已有 {objects} 个对象：迁移只恢复到空库，拒绝覆盖（请确认目标库后由 DBA 清空或重建）",
                 value=objects, unit="个对象", threshold="0", target=cfg.target.database.dsn,
                 code="" if objects == 0 else Code.MIGRATION_TARGET_NOT_EMPTY)
    preflight_oracle.check(m, ph, users)
    missing = sorted(src_spaces - tgt_spaces)
    ph.check("表空间", Status.OK if not missing else Status.FAIL,
             (f"RMAN DUPLICATE 按源库创建全部表空间（源库对象所在 {len(src_spaces)} 个）" if rman else
              "跨引擎迁移：Oracle 表空间不迁移（ora2pg 默认 USE_TABLESPACE 0，对象建在目标库默认表空间），不比较"
              if cfg.across_engines else
              f"源库对象所在表空间 {len(src_spaces)} 个，目标库均已创建") if not missing else
             f"目标库缺少表空间：{'、'.join(missing)}（由 DBA 按原库建好后再迁移）",
             value=len(missing), unit="个缺失", code="" if not missing else Code.MIGRATION_TABLESPACE_MISSING)
    try:
        from tasks.connect.df import disk_usage

        usage = disk_usage(m.session(cfg.target.db_host), [cfg.target.data_dir])[0]
    except Exception as exc:  # noqa: BLE001
        ph.check("目标服务器剩余空间", Status.ERROR, f"{type(exc).__name__}: {exc}", host=cfg.target.db_host)
        return
    free, ratio, reserve = usage.avail_kb * 1024, cfg.free_space_ratio, cfg.free_space_reserve_gib
    # RMAN DUPLICATE writes every datafile of the database on the target, not the vendor's schema alone
    needs, what = ((ph.facts["database_bytes"], "RMAN DUPLICATE 复制的整个数据库（数据文件）") if rman
                   else (size, "数据量"))
    ok = enough_space(needs, free, ratio, reserve)
    ph.facts.update(target_free_bytes=free, target_mount=usage.mounted_on)
    ph.note(cfg.target.db_host, f"env LC_ALL=C df -P -k {cfg.target.data_dir}",
            f"{usage.filesystem} avail {usage.avail_kb} KiB on {usage.mounted_on}")
    ph.check("目标服务器剩余空间", Status.OK if ok else Status.FAIL,
             space_reason(needs, free, usage.mounted_on, cfg.target.data_dir, ratio, reserve, what),
             value=round(free / max(needs, 1), 2), unit="倍",
             threshold=f"≥ {ratio:g} 倍" + (f" + {reserve:g} GiB" if reserve else ""),
             host=cfg.target.db_host, target=usage.mounted_on, code="" if ok else Code.MIGRATION_SPACE_LOW)


def ports(m: Migration, ph: PhaseRun) -> None:
    cfg = m.cfg
    wanted = [("源数据库", *db.host_port(cfg.source.database.dsn, cfg.source.engine)),
              ("目标数据库", *db.host_port(cfg.target.database.dsn, cfg.target.engine))]
    for name in dict.fromkeys([cfg.source.db_host, cfg.source.app_host, cfg.target.db_host, cfg.target.app_host]):
        h = m.site.any_host(name)
        wanted.append((f"{name} SSH", h.address, h.port))
    closed = []
    for what, host, port in wanted:
        try:
            with socket.create_connection((host, port), timeout=10):
                pass
        except OSError as exc:
            closed.append(f"{what} {host}:{port}（{exc.strerror or exc}）")
    ph.check("端口连通", Status.OK if not closed else Status.FAIL,
             f"{len(wanted)} 个端口均可连接" if not closed else "不可连接：" + "；".join(closed),
             value=len(closed), unit="个不通", threshold="0", code="" if not closed else Code.MIGRATION_PORT_UNREACHABLE)


def clocks(m: Migration, ph: PhaseRun) -> None:
    cfg = m.cfg
    skews = {}
    for name in dict.fromkeys([cfg.source.db_host, cfg.source.app_host, cfg.target.db_host, cfg.target.app_host]):
        try:
            before = time.time()
            res = m.session(name).run(["date", "+%s.%N"], timeout=60)
            after = time.time()
            skews[name] = float(res.stdout.strip()) - (before + after) / 2   # against the call's midpoint
        except Exception as exc:  # noqa: BLE001
            ph.check("服务器时钟", Status.ERROR, f"{name}: {type(exc).__name__}: {exc}", host=name)
            return
    worst = max(skews, key=lambda k: abs(skews[k]))
    ok = abs(skews[worst]) <= cfg.max_clock_skew_s
    ph.facts["clock_skew_s"] = {k: round(v, 3) for k, v in skews.items()}
    ph.check("服务器时钟", Status.OK if ok else Status.FAIL,
             "与工作站时钟之差：" + "，".join(f"{k} {v:+.2f} 秒" for k, v in skews.items()),
             value=round(abs(skews[worst]), 2), unit="秒", threshold=f"≤ {cfg.max_clock_skew_s:g} 秒",
             host=worst, code="" if ok else Code.MIGRATION_CLOCK_SKEW)


def app_health(m: Migration, ph: PhaseRun, urls: dict[str, str], title: str, host: str) -> bool:
    """GET each health URL; all 2xx -> OK. Also used by the smoke test and the rollback."""
    bad, bodies = [], []
    with httpx.Client(timeout=15, trust_env=False, follow_redirects=False) as client:
        for fn, url in urls.items():
            began = time.monotonic()
            try:
                r = client.get(url)
                bodies.append(r.text[:300])
                if not 200 <= r.status_code < 300:
                    bad.append(f"{fn} HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                bad.append(f"{fn} {type(exc).__name__}")
            ph.note(host, f"GET {url}", bodies[-1] if bodies else "", 0, time.monotonic() - began)
    ph.check(title, Status.OK if not bad and urls else Status.FAIL,
             f"{len(urls)} 个健康检查地址均返回 2xx" if not bad and urls else ("未配置健康检查地址" if not urls else
                                                                      "未通过：" + "；".join(bad)),
             host=host, value=len(bad), unit="个失败", code="" if not bad and urls else Code.MIGRATION_APP_UNHEALTHY)
    return not bad and bool(urls)


def verified_backup(m: Migration, ph: PhaseRun, store) -> None:
    """The newest PASSED 备份恢复验证 of this site within N days, from the bundles' manifests."""
    days = m.cfg.backup_verification_max_age_days
    since = utcnow() - timedelta(days=days)
    found = None
    try:
        names = [o.object_name for y in (since.year, utcnow().year)
                 for o in store.list(f"{m.site.site}/backup_verification/{y}/") if o.object_name.endswith("/manifest.json")]
        for key in sorted(set(names), reverse=True):
            man = json.loads(store.get(key))
            if man.get("verdict") == "OK" and datetime.fromisoformat(man["finished_at"]).astimezone(timezone.utc) >= since:
                found = (key.rsplit("/", 1)[0], man["finished_at"])
                break
    except Exception as exc:  # noqa: BLE001
        ph.check("备份恢复验证", Status.ERROR, f"无法读取证据库：{type(exc).__name__}: {exc}")
        return
    ph.facts["backup_verification"] = found[0] if found else None
    ph.check("备份恢复验证", Status.OK if found else Status.FAIL,
             f"最近一次通过的备份恢复验证：{found[0]}（{found[1]}）" if found else
             f"近 {days:g} 天内没有通过（PASSED）的备份恢复验证：请先运行 ebops verify-backup {m.site.site}",
             threshold=f"≤ {days:g} 天", code="" if found else Code.MIGRATION_NO_VERIFIED_BACKUP)


def run(m: Migration, ph: PhaseRun, store) -> None:
    versions_and_size(m, ph)
    ports(m, ph)
    clocks(m, ph)
    app_health(m, ph, m.cfg.source.health_urls, "应用健康（迁移前）", m.cfg.source.app_host)
    verified_backup(m, ph, store)
