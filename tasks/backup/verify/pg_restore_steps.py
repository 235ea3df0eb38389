"""Steps 3-5: restore into the scratch database, verify it against production as of the backup,
drop it again. Each step takes the earlier steps' typed results (outputs.py) and returns its own."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, ContextManager, Iterator
from zoneinfo import ZoneInfo

from prefect import task
from prefect.cache_policies import NONE

from tasks.backup.verify import measure, pg_steps
from tasks.backup.verify.outputs import STEP_ZH, Located, Restored, Verified, VerifyContext, cleanup_records
from tasks.backup.verify.pg_flow_steps import fetcher
from tasks.backup.verify.fingerprint_compare import (
    compare_fingerprints,
    compare_inventories,
    compare_row_counts,
)
from tasks.connect.ssh import HostSession
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow


RESTORE_TOOL = {"postgresql": "pg_restore", "oracle": "impdp（Data Pump 导入）"}


def _error(ctx: VerifyContext, step: str, title: str, exc: BaseException, started: datetime, target: str = "") -> CheckResult:
    return error_result(exc, started_at=started, check=f"backup_{step}", title=f"{STEP_ZH[step]}：{title}",
                        site=ctx.site, host=ctx.cfg.host, target=target)


# ---------------------------------------------------------------- 3. restore
@task(name="restore_to_scratch", cache_policy=NONE)
def restore_to_scratch(ctx: VerifyContext, session: HostSession, located: Located, scratch: str, run_id: str) -> Restored:
    started = utcnow()
    if located.backup is None:
        return Restored([ctx.skipped("restore", "恢复", "未定位到备份，无法恢复")])
    created = False
    try:
        # the server's session creates the scratch database: the one verification session that writes
        with pg_steps.connect(ctx.cfg.source) as src, pg_steps.connect(ctx.cfg.scratch, read_only=False) as server:
            pg_steps.refuse_target(src, server, scratch, ctx.cfg.scratch.prefix)
            pg_steps.create_scratch(server, scratch, run_id)
        created = True
        res, seconds = pg_steps.restore(session, ctx.cfg, located.backup, scratch)
    except pg_steps.RestoreRefused as exc:
        return Restored([ctx.record("restore", "恢复目标安全检查", Status.FAIL, str(exc), started, target=scratch,
                                    code=Code.RESTORE_TARGET_REFUSED)])
    except Exception as exc:  # noqa: BLE001
        return Restored([_error(ctx, "restore", "恢复", exc, started, scratch)],
                        scratch=scratch if created else None, created=created)
    if res.exit_code != 0:
        return Restored([ctx.record("restore", "恢复", Status.FAIL, f"pg_restore 退出码 {res.exit_code}：{res.stderr.strip()[-400:]}",
                                    started, target=scratch, value=round(seconds, 1), unit="秒", raw=pg_steps.shown(res),
                                    code=Code.RESTORE_FAILED)], scratch=scratch, created=True, seconds=seconds)
    return Restored([ctx.record("restore", "恢复", Status.OK, f"已恢复到临时库 {scratch}（与生产库隔离：独立数据库、默认表空间、"
                                f"对象属主为验证账号），用时 {seconds:.1f} 秒", started, target=scratch,
                                value=round(seconds, 1), unit="秒", raw=pg_steps.shown(res))],
                    scratch=scratch, created=True, seconds=seconds)


# ---------------------------------------------------------------- 4. verify
# A side is opened as (fetch, schema) in a read-only, repeatable-read transaction: the restored
# copy, and production (only when the backup is someone else's: ours was measured in its snapshot).
Side = Callable[[], ContextManager[tuple[measure.Fetch, str]]]


@contextmanager
def _pg_side(db, dbname: str | None, schema: str) -> Iterator[tuple[measure.Fetch, str]]:
    with pg_steps.connect(db, dbname, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield fetcher(conn), schema
        finally:
            conn.rollback()


@task(name="verify_restored_copy", cache_policy=NONE)
def verify_restored(ctx: VerifyContext, located: Located, restored: Restored) -> Verified:
    cfg = ctx.cfg
    verified = verify_copy(ctx, located, restored, lambda: _pg_side(cfg.scratch, restored.scratch, cfg.schema_name),
                           lambda: _pg_side(cfg.source, None, cfg.schema_name))
    if restored.scratch is not None and restored.seconds is not None and located.backup is not None:
        from tasks.backup.verify.quality_copy import quality_on_copy  # GX is imported only when a copy exists

        record, files = quality_on_copy(ctx, located, restored)
        return Verified(verified.records + [record], {**verified.files, **files})
    return verified


def verify_copy(ctx: VerifyContext, located: Located, restored: Restored, copy_side: Side,
                source_side: Side) -> Verified:
    """Measure the copy (and production, if not measured at the backup), then judge: the same for
    every backend, so PostgreSQL and Oracle records read alike."""
    if located.backup is None or restored.seconds is None or restored.scratch is None:
        return Verified([ctx.skipped("verify", "比对校验", "恢复未完成，无法比对")])
    cfg, started, as_of, d = ctx.cfg, utcnow(), located.as_of(ctx), ctx.cfg.dialect
    source, mutable = located.source, located.mutable(ctx)
    try:
        with copy_side() as (fetch, schema):
            # cut like production when it was measured first (in the backup's snapshot)
            copy = measure.measure(fetch, d, schema, as_of=as_of, chunk_rows=cfg.chunk_rows, mutable_columns=mutable,
                                   key_shifts=source.key_shifts() if source is not None else None,
                                   methods=source.methods() if source is not None else None)
            copy_rows = measure.sample_bills(fetch, d, schema, cfg.sample_bills, as_of)
        src_rows = located.source_sample
        if source is None or src_rows is None:   # someone else's backup: production now, within the cut-off
            with source_side() as (fetch, schema):
                if source is None:
                    source = measure.measure(fetch, d, schema, as_of=as_of, chunk_rows=cfg.chunk_rows,
                                             mutable_columns=mutable, key_shifts=copy.key_shifts(),
                                             methods=copy.methods())
                if src_rows is None:
                    keys = [{"id": k[0], measure.BILL_TIME: k[1]} for k in copy_rows]
                    src_rows = measure.sample_bills(fetch, d, schema, 0, as_of, keys=keys)
    except Exception as exc:  # noqa: BLE001
        return Verified([_error(ctx, "verify", "比对校验", exc, started, restored.scratch)])
    host = cfg.host
    out = compare_inventories(ctx.site, source.inventory, copy.inventory, schema=cfg.schema_name,
                              host=host, started_at=started)
    out += compare_row_counts(ctx.site, source.counts, copy.counts, as_of=as_of, host=host, started_at=started)
    out += compare_fingerprints(ctx.site, source.prints, copy.prints, as_of=as_of, host=host, started_at=started)
    for r in out:
        r.title = f"{STEP_ZH['verify']}：{r.title}"
    out.append(_sample_record(ctx, mutable, copy_rows, src_rows, started))
    out.append(_rpo_record(ctx, located, copy, started))
    out.append(_rto_record(ctx, restored))
    files = {"restored_fingerprints.json": json.dumps(copy.to_json(), ensure_ascii=False, indent=1)}
    if located.source is None:  # measured here, not in the backup's snapshot: keep production's side too
        files["source_fingerprints.json"] = json.dumps(source.to_json(), ensure_ascii=False, indent=1)
    return Verified(out, files)


def _sample_record(ctx: VerifyContext, mutable: dict[str, list[str]], copy_rows: dict, src_rows: dict,
                   started: datetime) -> CheckResult:
    if not copy_rows:
        return ctx.record("verify", "票据抽样逐字段比对", Status.SKIPPED if ctx.cfg.sample_bills else Status.OK,
                          "恢复库中没有可抽样的票据" if ctx.cfg.sample_bills else "站点配置不抽样（sample_bills: 0）", started,
                          code=Code.NO_DATA if ctx.cfg.sample_bills else Code.OK)
    ignore = mutable.get(measure.BILL_TABLE, [])
    bad = {}
    for key, row in copy_rows.items():
        diff = measure.compare_bill(src_rows.get(key), row, ignore)
        if diff:
            bad[measure.masked_bill_label(row or src_rows.get(key) or {})] = diff
    scope = f"（不比较备份后仍会变化的字段：{'、'.join(ignore)}）" if ignore else ""
    if bad:
        named = "；".join(f"{k}：{'、'.join(v)}" for k, v in list(bad.items())[:10])
        return ctx.record("verify", "票据抽样逐字段比对", Status.FAIL, f"{len(bad)}/{len(copy_rows)} 张票据字段不一致：{named}{scope}",
                          started, value=len(bad), unit="张不一致", threshold="0", code=Code.SAMPLE_MISMATCH)
    return ctx.record("verify", "票据抽样逐字段比对", Status.OK, f"抽取 {len(copy_rows)} 张票据（按主键均匀分布），"
                      f"所有字段两边一致{scope}", started, value=0, unit="张不一致", threshold="0")


def _rpo_record(ctx: VerifyContext, located: Located, restored: measure.Measurement, started: datetime) -> CheckResult:
    taken_local = located.backup.taken_at.astimezone(ZoneInfo(ctx.tz)).replace(tzinfo=None)
    if restored.newest_bill is None:
        return ctx.record("verify", "数据丢失窗口（RPO）", Status.FAIL, "恢复库中没有任何票据", started,
                          code=Code.RESTORED_EMPTY)
    gap_h = (taken_local - restored.newest_bill).total_seconds() / 3600
    status = Status.OK if gap_h <= ctx.cfg.rpo_max_hours else Status.FAIL
    return ctx.record("verify", "数据丢失窗口（RPO）", status,
                      f"备份中最新票据开具于 {restored.newest_bill:%Y-%m-%d %H:%M:%S}，备份时间 {taken_local:%Y-%m-%d %H:%M:%S}，"
                      f"相差 {gap_h:.2f} 小时", started, value=round(gap_h, 2), unit="小时",
                      threshold=f"≤ {ctx.cfg.rpo_max_hours:g} 小时",
                      code=Code.OK if status is Status.OK else Code.RPO_EXCEEDED)


def _rto_record(ctx: VerifyContext, restored: Restored) -> CheckResult:
    minutes = restored.seconds / 60
    status = Status.OK if minutes <= ctx.cfg.rto_max_minutes else Status.FAIL
    return ctx.record("verify", "恢复用时（RTO）", status, f"{RESTORE_TOOL[ctx.cfg.dialect]} 用时 {restored.seconds:.1f} 秒", utcnow(),
                      value=round(minutes, 2), unit="分钟", threshold=f"≤ {ctx.cfg.rto_max_minutes:g} 分钟",
                      code=Code.OK if status is Status.OK else Code.RTO_EXCEEDED)


# ---------------------------------------------------------------- 5. clean up
@task(name="drop_scratch", cache_policy=NONE)
def cleanup(ctx: VerifyContext, restored: Restored, keep: bool) -> list[CheckResult]:
    def drop(scratch: str) -> str:
        with pg_steps.connect(ctx.cfg.scratch, read_only=False) as server:  # DROP DATABASE writes
            return pg_steps.drop_scratch(server, scratch)

    return cleanup_records(ctx, restored, keep, "临时库", drop)
