"""Phases 4 and 5: the final backup of the frozen source, its copy to the target over SSH and the
restore there, each with its SHA-256, size, time and throughput; and the plan's sample transfer.

PostgreSQL family: pg_dump -Fc on the source's database host -> streamed through the worker from
one SSH channel into the other (no key of one server on the other; the worker hashes every byte as
it passes) -> pg_restore --jobs on the target's database host. The tools log in through each host's
~/.pgpass, as the hospital's backup job does: no password on a command line. Oracle: the commands
of tasks/migration/oracle.py by `migration.oracle_method`: Data Pump (this dump, copy and restore
with expdp/impdp) or RMAN DUPLICATE (no dump: the transfer phase runs RMAN on the target's host),
recorded with their transcripts. Across engines (Oracle -> PostgreSQL family) the phases run the
site's export and load commands instead (tasks/migration/cross_engine.py).
"""
from __future__ import annotations

import hashlib
import select
import shlex
import time
from dataclasses import dataclass

from tasks.connect.ssh import HostSession
from tasks.core.masking import mask_text
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from tasks.migration import cross_engine, db, oracle
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

CHUNK = 256 * 1024


@dataclass
class Copied:
    bytes: int
    sha256: str
    seconds: float
    src_exit: int
    dst_exit: int
    stderr: str

    @property
    def mib_s(self) -> float:
        return self.bytes / 1048576 / max(self.seconds, 1e-6)


def relay(src: HostSession, src_cmd: str, dst: HostSession, dst_cmd: str, timeout: float,
          max_mib_s: float | None = None) -> Copied:
    """Stream the stdout of `src_cmd` into the stdin of `dst_cmd`, hashing it; `max_mib_s` spares
    the hospital's network (and lets a test stop a run mid-copy)."""
    a = src.connect().open_session(timeout=src.cfg.connect_timeout_s)
    b = dst.connect().open_session(timeout=dst.cfg.connect_timeout_s)
    h, n, err = hashlib.sha256(), 0, bytearray()
    began = time.monotonic()
    try:
        b.exec_command(dst_cmd)
        a.exec_command(src_cmd)
        while True:
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"copy {src.cfg.name} -> {dst.cfg.name} did not finish within {timeout:g}s")
            select.select([a], [], [], 0.05)
            while a.recv_stderr_ready():
                err += a.recv_stderr(65536)
            if a.recv_ready():
                chunk = a.recv(CHUNK)
                h.update(chunk)
                n += len(chunk)
                b.sendall(chunk)
                if max_mib_s:
                    ahead = n / 1048576 / max_mib_s - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)  # throttle: keep to the configured rate
            elif a.exit_status_ready() and not a.recv_ready():
                break
        b.shutdown_write()
        src_exit = a.recv_exit_status()
        dst_exit = b.recv_exit_status()
        while b.recv_stderr_ready():
            err += b.recv_stderr(65536)
    finally:
        a.close()
        b.close()
    return Copied(n, h.hexdigest(), time.monotonic() - began, src_exit, dst_exit, err.decode("utf-8", "replace")[-2000:])


def _pg_target(dsn: str) -> tuple[str, str]:
    host, port = db.host_port(dsn, "postgresql")
    return host, str(port)


def dump_path(m: Migration, side: str) -> str:
    cfg = m.cfg
    d = (cfg.source if side == "source" else cfg.target).work_dir.rstrip("/")
    return f"{d}/ebill_migration_{m.facts.get('plan_id', 'plan')}.dump"


def dump_argv(m: Migration) -> list[str]:
    """The final backup's command on the source's database host (the plan shows it as is)."""
    cfg, out = m.cfg, dump_path(m, "source")
    if cfg.dump_command:
        return [a.replace("{dump}", out) for a in cfg.dump_command]
    if cfg.source.engine == "oracle":
        return oracle.expdp_argv(cfg, out, oracle.canonical_schema(m.site))
    host, port = _pg_target(cfg.source.database.dsn)
    return ["sh", "-c", 'umask 077 && exec "$@"', "sh", f"{cfg.source.tools_dir.rstrip('/')}/pg_dump", "-Fc",
            "-h", host, "-p", port, "-U", cfg.source.admin_user, "-w", "-f", out, cfg.source.database_name]


def restore_argv(m: Migration, again: bool = False) -> list[str]:
    """pg_restore on the target's host. `again`: a rerun after an interrupted attempt drops what
    that attempt created first (--clean --if-exists); the target was empty before this migration."""
    cfg, dump = m.cfg, dump_path(m, "target")
    if cfg.restore_command:
        return [a.replace("{dump}", dump) for a in cfg.restore_command]
    if oracle.duplicates(cfg):
        return oracle.rman_duplicate_argv(cfg)
    if cfg.target.engine == "oracle":
        return oracle.impdp_argv(cfg, dump, oracle.canonical_schema(m.site))
    host, port = _pg_target(cfg.target.database.dsn)
    return ([f"{cfg.target.tools_dir.rstrip('/')}/pg_restore", "--exit-on-error", "--jobs", str(cfg.restore_jobs)]
            + (["--clean", "--if-exists"] if again else [])
            + ["-h", host, "-p", port, "-U", cfg.target.admin_user, "-w", "-d", cfg.target.database_name, dump])


def receive_cmd(path: str) -> str:
    return shlex.join(["sh", "-c", 'umask 077 && cat > "$1"', "sh", path])


def sha256_of(ph: PhaseRun, session: HostSession, host: str, path: str) -> tuple[str, int]:
    res = ph.run(session, host, ["sh", "-c", 'sha256sum -- "$1" && stat -c %s -- "$1"', "sh", path], timeout=3600)
    lines = res.stdout.split()
    if res.exit_code != 0 or len(lines) < 3:
        raise RuntimeError(f"sha256sum/stat of {path} on {host} failed: {res.stderr.strip()[:300]}")
    return lines[0], int(lines[-1])


# ---------------------------------------------------------------- phase 4: final backup
def final_backup(m: Migration, ph: PhaseRun) -> None:
    cfg = m.cfg
    if cfg.across_engines:
        return cross_engine.export(m, ph)
    if oracle.duplicates(cfg):
        ph.check("最终备份", Status.OK, "RMAN DUPLICATE FROM ACTIVE DATABASE 在传输阶段直接从已停机冻结的源库复制数据文件，"
                 "不生成导出文件（源库不做修改，回退仍用原库）", host=cfg.source.db_host)
        return
    s = m.session(cfg.source.db_host)
    began = time.monotonic()
    res = ph.run(s, cfg.source.db_host, dump_argv(m), timeout=cfg.command_timeout_s)
    seconds = time.monotonic() - began
    if res.exit_code != 0:
        ph.check("最终备份", Status.FAIL, f"备份命令退出码 {res.exit_code}：{res.stderr.strip()[-300:]}",
                 host=cfg.source.db_host, code=Code.MIGRATION_TRANSFER_FAILED)
        return
    sha, size = sha256_of(ph, s, cfg.source.db_host, dump_path(m, "source"))
    ph.facts.update(dump_sha256=sha, dump_bytes=size, dump_seconds=round(seconds, 2))
    ph.check("最终备份", Status.OK, f"{dump_path(m, 'source')}，{size / 1048576:.2f} MiB，SHA-256 {sha}，用时 {seconds:.1f} 秒",
             host=cfg.source.db_host, target=dump_path(m, "source"), value=round(seconds, 1), unit="秒")


# ---------------------------------------------------------------- phase 5: copy and restore
def duplicate(m: Migration, ph: PhaseRun, again: bool) -> None:
    """Oracle, oracle_method rman_duplicate: RMAN on the target's host copies the frozen source
    over Oracle Net into the NOMOUNT instance and opens it; the transcript (masked) is a file of the
    bundle as well as the command's record. A rerun: RMAN resumes a DUPLICATE cut off mid-way,
    skipping the datafiles it already restored (its default since 11.2)."""
    cfg = m.cfg
    began = time.monotonic()
    res = ph.run(m.session(cfg.target.db_host), cfg.target.db_host, restore_argv(m, again), timeout=cfg.command_timeout_s)
    seconds = time.monotonic() - began
    transcript = res.stdout + res.stderr
    m.files["migration_rman_duplicate.log"] = mask_text(transcript)
    ok, reason = oracle.judge_duplicate(res.exit_code, transcript)
    ph.facts.update(restore_seconds=round(seconds, 2), transfer_method="rman_duplicate")
    ph.check("RMAN DUPLICATE 到目标库", Status.OK if ok else Status.FAIL,
             f"{reason}，用时 {seconds:.1f} 秒" + ("（续做上次中断的复制）" if again else "") + "；完整输出见 migration_rman_duplicate.log",
             host=cfg.target.db_host, value=round(seconds, 1), unit="秒", code="" if ok else Code.MIGRATION_TRANSFER_FAILED)


def copy_and_restore(m: Migration, ph: PhaseRun, again: bool) -> None:
    cfg = m.cfg
    if cfg.across_engines:
        return cross_engine.load(m, ph, again)
    if oracle.duplicates(cfg):
        return duplicate(m, ph, again)
    src, dst = m.session(cfg.source.db_host), m.session(cfg.target.db_host)
    src_path, dst_path = dump_path(m, "source"), dump_path(m, "target")
    send = shlex.join(["cat", "--", src_path])
    got = relay(src, send, dst, receive_cmd(dst_path), cfg.command_timeout_s, cfg.transfer_max_mib_s)
    ph.note(f"{cfg.source.db_host} -> {cfg.target.db_host}", f"{send}  |  (ebill-ops worker)  |  {receive_cmd(dst_path)}",
            got.stderr, got.src_exit or got.dst_exit, got.seconds)
    dst_sha, dst_size = sha256_of(ph, dst, cfg.target.db_host, dst_path) if got.dst_exit == 0 else ("", 0)
    want = m.facts.get("dump_sha256")
    ok = got.src_exit == 0 and got.dst_exit == 0 and got.sha256 == want == dst_sha
    ph.facts.update(copy_bytes=got.bytes, copy_seconds=round(got.seconds, 2), copy_mib_s=round(got.mib_s, 2),
                    target_dump_sha256=dst_sha)
    ph.check("复制到目标服务器", Status.OK if ok else Status.FAIL,
             f"{got.bytes / 1048576:.2f} MiB，用时 {got.seconds:.1f} 秒（{got.mib_s:.2f} MiB/s），"
             + (f"两端 SHA-256 一致 {dst_sha}" if ok else f"失败：源退出码 {got.src_exit}，目标退出码 {got.dst_exit}，"
                f"SHA-256 源 {want} / 途中 {got.sha256} / 目标 {dst_sha or '无'}"),
             host=cfg.target.db_host, target=dst_path, value=round(got.mib_s, 2), unit="MiB/s",
             code="" if ok else Code.MIGRATION_TRANSFER_FAILED)
    if not ok:
        return
    began = time.monotonic()
    res = ph.run(dst, cfg.target.db_host, restore_argv(m, again), timeout=cfg.command_timeout_s)
    seconds = time.monotonic() - began
    ph.facts.update(restore_seconds=round(seconds, 2))
    ph.check("恢复到目标库", Status.OK if res.exit_code == 0 else Status.FAIL,
             (f"用时 {seconds:.1f} 秒（{cfg.restore_jobs} 个并行任务）" + ("，覆盖上次中断留下的对象" if again else ""))
             if res.exit_code == 0 else f"恢复命令退出码 {res.exit_code}：{res.stderr.strip()[-400:]}",
             host=cfg.target.db_host, value=round(seconds, 1), unit="秒",
             code="" if res.exit_code == 0 else Code.MIGRATION_TRANSFER_FAILED)


# ---------------------------------------------------------------- the plan's sample transfer
def sample_transfer(m: Migration, ph: PhaseRun) -> float:
    """Copy `sample_transfer_mib` of incompressible bytes from the source's database host to the
    target's work directory and remove it; returns MiB/s (the downtime estimate's basis)."""
    cfg = m.cfg
    src, dst = m.session(cfg.source.db_host), m.session(cfg.target.db_host)
    path = f"{cfg.target.work_dir.rstrip('/')}/ebops_sample_{m.run_id[:8]}.bin"
    send = shlex.join(["head", "-c", str(cfg.sample_transfer_mib * 1048576), "/dev/urandom"])
    got = relay(src, send, dst, receive_cmd(path), 3600, cfg.transfer_max_mib_s)
    ph.note(f"{cfg.source.db_host} -> {cfg.target.db_host}", f"{send}  |  (ebill-ops worker)  |  {receive_cmd(path)}",
            got.stderr, got.src_exit or got.dst_exit, got.seconds)
    dst_sha, _ = sha256_of(ph, dst, cfg.target.db_host, path)
    ph.run(dst, cfg.target.db_host, ["rm", "-f", "--", path], timeout=120)
    ok = got.dst_exit == 0 and dst_sha == got.sha256 and got.bytes > 0
    ph.check("样本传输测速", Status.OK if ok else Status.FAIL,
             f"{got.bytes / 1048576:.1f} MiB 用时 {got.seconds:.2f} 秒，{got.mib_s:.2f} MiB/s，SHA-256 一致" if ok else
             f"样本传输失败（退出码 {got.src_exit}/{got.dst_exit}）：{got.stderr[-300:]}",
             value=round(got.mib_s, 2), unit="MiB/s", code="" if ok else Code.MIGRATION_TRANSFER_FAILED)
    return got.mib_s
