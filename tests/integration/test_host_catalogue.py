"""Log errors, certificates and the e-bill functions against the sandbox hospital, over real SSH,
HTTP and TLS: what the inspection sees when a log gains errors or rotates, a function fails, or the
signing server's certificate is about to expire."""
from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest

from config.hosts import BackupConfig, CertificateFile, HostConfig, LogFile
from config.settings import Thresholds, load_site
from sandbox import host_trees
from sandbox import scenarios_hosts as sc
from sandbox.host_trees import app_log_line
from tasks.inspection.certs import certificate_files, tls_endpoints
from tasks.inspection.health import ebill_functions
from tasks.inspection.hosts import disk_usage, last_backup
from tasks.connect.ssh import HostPool
from tasks.inspection.logs import log_errors, position_key
from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow

pytestmark = pytest.mark.sandbox
TH = Thresholds()


@pytest.fixture()
def site(sites_dir):
    return load_site("demo")


@pytest.fixture()
def root(sandbox) -> Path:
    return Path(sandbox["root"]).resolve()


@pytest.fixture()
def pool():
    with HostPool() as p:
        yield p


@pytest.fixture()
def own_files(root):
    """Files of this test only, under host trees; removed afterwards (with rotated copies)."""
    made: list[tuple[str, str]] = []

    def new(host: str, suffix: str = ".log", folder: str | None = None) -> tuple[str, str]:
        folder = folder or {"db1": "log", "app1": "logs"}[host]
        rel = f"{folder}/test-{uuid.uuid4().hex[:10]}{suffix}"
        made.append((host, rel))
        return rel, str(sc.host_path(root, host, rel))

    yield new
    for host, rel in made:
        for p in (rel, rel + ".1"):
            sc.remove_file(root, host, p)


def _info(msg: str) -> str:
    return app_log_line("INFO", msg, utcnow(), "http-nio-8080-exec-1", "c.e.ebill.service.InvoiceService")


def _error(msg: str) -> str:
    return app_log_line("ERROR", msg, utcnow(), "http-nio-8080-exec-2", "c.e.ebill.client.SignClient")


def _restart(rec) -> str:
    """Why the log was read from its start, from the raw header (first | rotated | truncated | rewritten)."""
    header = rec.raw.splitlines()[0].split()
    return header[-1] if header[-1] in ("first", "rotated", "truncated", "rewritten") else ""


def _with_logs(site, host: str, *logs: LogFile) -> HostConfig:
    return site.host(host).model_copy(update={"logs": list(logs)})


def _app_log(path: str) -> LogFile:
    return LogFile(path=path, kind="application", error_patterns=["ERROR", "Exception"],
                   critical_patterns=["OutOfMemoryError", "签名服务器连接失败"])


# ---------------------------------------------------------------- logs
def test_new_errors_warn_once_then_ok_and_critical_fails(site, root, pool, own_files):
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info(f"开票成功 billNo={n:010d}") for n in range(50)])
    host = _with_logs(site, "app1", _app_log(path))
    key = position_key("app1", path)

    [first], pos = log_errors.fn("demo", host, pool, {})
    assert (first.status, first.code, first.value) == (Status.OK, Code.OK, 0), first.reason
    assert _restart(first) == "first"
    assert pos[key]["offset"] == Path(path).stat().st_size

    sc.append_log_errors(root, "app1", rel, [_error("开票接口调用失败 billNo=0000001001 code=E1002"), _info("重试成功")])
    [second], pos = log_errors.fn("demo", host, pool, pos)
    assert (second.status, second.code, second.value) == (Status.WARN, Code.LOG_NEW_ERRORS, 1), second.reason
    assert "ERROR×1" in second.reason and "code=E1002" in second.raw and "重试成功" not in second.raw

    [third], pos = log_errors.fn("demo", host, pool, pos)
    assert third.status == Status.OK and third.value == 0, third.reason  # the position was kept

    # A line still being written is left for the next run, then read once complete.
    with open(path, "a", encoding="utf-8") as f:
        f.write(_error("java.lang.OutOfMemoryError: Java heap space").rstrip("\n"))
    [partial], pos = log_errors.fn("demo", host, pool, pos)
    assert partial.status == Status.OK and pos[key]["offset"] < Path(path).stat().st_size
    sc.append_log_errors(root, "app1", rel, ["", "\tat c.e.ebill.sign.SignClient.sign(SignClient.java:88)"])
    [critical], pos = log_errors.fn("demo", host, pool, pos)
    assert (critical.status, critical.code, critical.value) == (Status.FAIL, Code.LOG_CRITICAL_ERRORS, 1), critical.reason
    assert "OutOfMemoryError×1" in critical.reason and "Java heap space" in critical.raw


def test_rotation_reads_old_tail_and_new_file_from_its_start(site, root, pool, own_files):
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info("启动完成")] * 20)
    host = _with_logs(site, "app1", _app_log(path))
    _, pos = log_errors.fn("demo", host, pool, {})

    sc.append_log_errors(root, "app1", rel, [_error("before-rotation 推送失败 batch=1")])
    rotated = sc.rotate_log(root, "app1", rel, [_error("after-rotation 推送失败 batch=2"), _info("ok")])
    [rec], pos = log_errors.fn("demo", host, pool, pos)
    assert (rec.status, rec.code, rec.value) == (Status.WARN, Code.LOG_NEW_ERRORS, 2), rec.reason
    assert _restart(rec) == "rotated" and rotated.name in rec.reason
    assert "before-rotation" in rec.raw and "after-rotation" in rec.raw
    assert pos[position_key("app1", path)]["offset"] == Path(path).stat().st_size

    # Rotated again and the old file is gone (compressed away): the new file is still read whole.
    sc.rotate_log(root, "app1", rel, [_error("third-file 归档失败")])
    rotated.unlink()
    [rec], _ = log_errors.fn("demo", host, pool, pos)
    assert rec.status == Status.WARN and rec.value == 1 and "third-file" in rec.raw
    # the old file's unread tail is lost, and the reason says so (a note without a code of its own)
    assert _restart(rec) == "rotated" and "未找到轮转前的文件" in rec.reason


def test_truncation_reads_from_start(site, root, pool, own_files):
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info("x" * 80)] * 30)
    host = _with_logs(site, "app1", _app_log(path))
    _, pos = log_errors.fn("demo", host, pool, {})
    inode = Path(path).stat().st_ino
    sc.truncate_log(root, "app1", rel, [_error("签名服务器连接失败 timeout=3000ms")])
    assert Path(path).stat().st_ino == inode
    [rec], pos = log_errors.fn("demo", host, pool, pos)
    assert (rec.status, rec.code, rec.value) == (Status.FAIL, Code.LOG_CRITICAL_ERRORS, 1), rec.reason
    assert _restart(rec) == "truncated"


def test_oracle_alert_codes_and_missing_log(site, root, pool, own_files):
    rel, path = own_files("db1")
    sc.append_log_errors(root, "db1", rel, [
        "2026-11-26T02:00:01.123456+08:00", "ORA-12012: error on auto execute of job \"EBILL\".\"J_STAT\"",
        "ORA-01555: snapshot too old: rollback segment number 7 with name \"_SYSSMU7_1$\" too small",
        "Completed checkpoint up to RBA [0x1a.2.10]"])
    missing = str(sc.host_path(root, "db1", f"log/no-such-{uuid.uuid4().hex[:6]}.log"))
    host = _with_logs(site, "db1", LogFile(path=missing, kind="oracle_alert"), LogFile(path=path, kind="oracle_alert"))
    (gone, alert), pos = log_errors.fn("demo", host, pool, {})
    assert (gone.status, gone.code, gone.target) == (Status.ERROR, Code.FILE_MISSING, missing), gone.reason
    assert (alert.status, alert.code, alert.value) == (Status.FAIL, Code.LOG_CRITICAL_ERRORS, 2), alert.reason
    assert "ORA-01555×1" in alert.reason and "ORA-12012×1" in alert.reason
    assert set(pos) == {position_key("db1", path)}  # the missing log gets no position


def test_unreachable_host_gives_one_error_per_log_and_keeps_positions(site, pool, unused_port):
    host = site.host("app1").model_copy(update={
        "port": unused_port, "logs": [_app_log("/a.log"), _app_log("/b.log")],
        "certificates": [CertificateFile(name="签名证书", path="/c.pem")]})
    before = {position_key("app1", "/a.log"): {"inode": 1, "size": 5, "offset": 5, "head_sha256": "x"}}
    recs, pos = log_errors.fn("demo", host, pool, before)
    assert [(r.status, r.target) for r in recs] == [(Status.ERROR, "/a.log"), (Status.ERROR, "/b.log")]
    assert {r.code for r in recs} == {Code.HOST_UNREACHABLE} and pos == before
    [cert] = certificate_files.fn("demo", host, pool, TH)
    assert (cert.status, cert.code) == (Status.ERROR, Code.HOST_UNREACHABLE), cert.reason


# ---------------------------------------------------------------- e-bill functions
def test_health_all_functions_ok_then_one_fails(site, root, sites_dir, unused_port):
    recs = ebill_functions.fn(site)
    assert [r.target for r in recs] == ["开票（issue）", "冲红（red_flush）", "查询（query）", "归档（archive）",
                                        "交付（delivery）", "报表（reports）", "系统管理（admin）"]
    assert all(r.status == Status.OK and r.unit == "ms" for r in recs), [r.reason for r in recs]
    with sc.health_fault(root, "archive", 503):
        recs = {r.target: r for r in ebill_functions.fn(site)}
    archive = recs["归档（archive）"]
    assert (archive.status, archive.code) == (Status.FAIL, Code.HTTP_STATUS_NOT_2XX) and "503" in archive.raw
    assert [t for t, r in recs.items() if r.status != Status.OK] == ["归档（archive）"]

    def down(data):
        data["health"]["urls"]["query"] = f"http://127.0.0.1:{unused_port}/health/query"
        del data["health"]["urls"]["admin"]
    recs = {r.target: r for r in ebill_functions.fn(load_site(sites_dir("down", down)))}
    assert (recs["查询（query）"].status, recs["查询（query）"].code) == (Status.FAIL, Code.HTTP_UNREACHABLE)
    assert (recs["系统管理（admin）"].status, recs["系统管理（admin）"].code) == (Status.SKIPPED, Code.NOT_CONFIGURED)

    [skipped] = ebill_functions.fn(site.model_copy(update={"health": None}))
    assert (skipped.status, skipped.code) == (Status.SKIPPED, Code.NOT_CONFIGURED) and "health" in skipped.reason


# ---------------------------------------------------------------- certificates
def test_signing_server_certificate_ok_expiring_expired(site, root, sites_dir, unused_port):
    [ok] = tls_endpoints.fn(site, TH)
    assert ok.status == Status.OK and ok.value == 400 and ok.check == "certificate_expiry", ok.reason
    assert "CN=sign.ebill.sandbox" in ok.reason and "北京时间" in ok.reason
    for days, status in ((30, Status.WARN), (10, Status.FAIL), (-2, Status.FAIL)):
        with sc.tls_cert_days(root, days):
            [rec] = tls_endpoints.fn(site, TH)
        assert (rec.status, rec.value) == (status, days), rec.reason
        assert rec.code == (Code.CERT_EXPIRED if days < 0 else Code.CERT_EXPIRING)
    [back] = tls_endpoints.fn(site, TH)
    assert back.value == 400

    def dead(data):
        data["tls_endpoints"].append({"name": "电子票据门户", "address": "127.0.0.1", "port": unused_port})
    good, gone = tls_endpoints.fn(load_site(sites_dir("tls-dead", dead)), TH)
    assert good.status == Status.OK and gone.status == Status.ERROR and "电子票据门户" in gone.target
    assert gone.code == Code.HOST_UNREACHABLE, gone.reason  # connection refused


def test_certificate_files_on_app1(site, root, pool, own_files):
    [sign] = certificate_files.fn("demo", site.host("app1"), pool, TH)
    assert sign.status == Status.OK and sign.value == 300 and sign.host == "app1", sign.reason
    assert "颁发者 CN=沙箱演示医院 CA" in sign.reason and "sign.pem" in sign.target

    der_rel, der_path = own_files("app1", ".der", folder="opt/ebill/cert")
    sc.write_certificate_file(root, "app1", der_rel, 20, der=True)
    host = site.host("app1").model_copy(update={"certificates": [
        CertificateFile(name="CA 证书", path=der_path),
        CertificateFile(name="丢失的证书", path=der_path + ".missing")]})
    der, missing = certificate_files.fn("demo", host, pool, TH)
    assert (der.status, der.code, der.value) == (Status.WARN, Code.CERT_EXPIRING, 20), der.reason
    assert (missing.status, missing.code) == (Status.ERROR, Code.FILE_MISSING) and "丢失的证书" in missing.target


# ---------------------------------------------------------------- faults of one host (issue 13's fault list)
def _broken(site, fault: str, tmp_path: Path, unused_port: int) -> HostConfig:
    """app1 as the site file gives it, with one fault: the server down, our key refused, or its host key changed."""
    app1 = site.host("app1")
    if fault == "unreachable":
        return app1.model_copy(update={"port": unused_port})
    other = asyncssh.generate_private_key("ssh-ed25519")
    if fault == "auth_refused":
        key = tmp_path / "id_not_authorized"
        key.write_bytes(other.export_private_key("openssh"))
        key.chmod(0o600)
        return app1.model_copy(update={"key_file": str(key)})
    kind, blob = other.export_public_key("openssh").decode().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{app1.address}]:{app1.port} {kind} {blob}\n")  # what a reinstalled server would cause
    return app1.model_copy(update={"known_hosts": str(kh)})


@pytest.mark.parametrize("fault, code", [("unreachable", Code.HOST_UNREACHABLE), ("auth_refused", Code.AUTH_REFUSED),
                                         ("host_key_changed", Code.HOST_KEY_REJECTED)])
def test_one_host_fault_is_an_error_per_item_and_the_other_hosts_go_on(site, pool, tmp_path, unused_port, fault, code):
    host = _broken(site, fault, tmp_path, unused_port)
    logs, pos = log_errors.fn("demo", host, pool, {})
    certs = certificate_files.fn("demo", host, pool, TH)
    disks = disk_usage.fn("demo", host, pool, TH)
    recs = logs + certs + disks
    assert len(logs) == len(host.logs) and len(certs) == len(host.certificates) and disks and pos == {}
    assert {(r.status, r.code) for r in recs} == {(Status.ERROR, code)}, [(r.check, r.code, r.reason) for r in recs]
    # The same pool still serves the healthy hosts of the run.
    others = disk_usage.fn("demo", site.host("db1"), pool, TH)
    assert others and all(r.status == Status.OK for r in others), [r.reason for r in others]


def test_a_hanging_log_read_errors_within_its_timeout_and_the_other_logs_are_read(site, root, pool, own_files):
    # A FIFO given as a log path: reading it blocks until a writer comes, which none ever does.
    fifo_rel, fifo = own_files("app1", ".fifo")
    os.mkfifo(fifo)
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info("启动完成")])
    timeout = 5
    host = _with_logs(site, "app1", _app_log(fifo), _app_log(path)).model_copy(update={"command_timeout_s": timeout})
    began = time.monotonic()
    (hung, fine), pos = log_errors.fn("demo", host, pool, {})
    elapsed = time.monotonic() - began
    assert (hung.status, hung.code, hung.target) == (Status.ERROR, Code.COMMAND_TIMEOUT, fifo), hung.reason
    assert (fine.status, fine.code) == (Status.OK, Code.OK), fine.reason
    assert set(pos) == {position_key("app1", path)}  # the hung log keeps no position: it is read again next time
    assert elapsed < timeout + 60, elapsed  # one timeout, not a hang (the rest is the loaded sandbox's SSH)


# ---------------------------------------------------------------- the last backup, each finding by its code
@pytest.fixture()
def backup_dir(root):
    """A backup folder and job log of this test only, on db1 (the sandbox's own is left alone)."""
    rel = f"backup-test-{uuid.uuid4().hex[:8]}"
    folder = sc.host_path(root, "db1", rel)
    folder.mkdir(parents=True)
    yield folder
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()


def _backup(folder: Path, name: str, size: int, status: str, finished, logged_size: int | None = None,
            write: bool = True) -> None:
    if write:
        (folder / name).write_bytes(b"\0" * size)
    host_trees.append_backup_log(folder / "backup.log", finished - timedelta(minutes=3), finished, status, name,
                                 size if logged_size is None else logged_size)


def test_last_backup_findings_carry_their_codes(site, pool, backup_dir):
    now = utcnow()
    db1 = site.host("db1").model_copy(update={"backup": BackupConfig(
        directory=str(backup_dir), log=str(backup_dir / "backup.log"), pattern="ebill_*.dump")})

    def judge(at=None):
        [rec, space] = last_backup.fn("demo", db1, pool, TH, now=at)
        assert space.check == "backup_space"
        assert space.code == (Code.OK if space.status is Status.OK else Code.BACKUP_SPACE_HIGH)
        return rec.status, rec.code

    (backup_dir / "backup.log").write_text("")
    assert judge() == (Status.FAIL, Code.BACKUP_LOG_EMPTY)
    _backup(backup_dir, "ebill_1.dump", 100, "SUCCESS", now - timedelta(hours=2))
    assert judge() == (Status.OK, Code.OK)
    assert judge(now + timedelta(hours=30)) == (Status.FAIL, Code.BACKUP_TOO_OLD)
    _backup(backup_dir, "ebill_2.dump", 100, "SUCCESS", now - timedelta(hours=1), logged_size=123)
    assert judge() == (Status.FAIL, Code.BACKUP_SIZE_MISMATCH)
    _backup(backup_dir, "ebill_3.dump", 100, "SUCCESS", now - timedelta(minutes=30), write=False)
    assert judge() == (Status.FAIL, Code.BACKUP_FILE_MISSING)
    _backup(backup_dir, "ebill_4.dump", 0, "FAILED", now - timedelta(minutes=10))
    assert judge() == (Status.FAIL, Code.BACKUP_JOB_FAILED)  # the first of its findings: the job failed
