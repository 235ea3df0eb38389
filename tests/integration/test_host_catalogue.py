"""Log errors, certificates and the e-bill functions against the sandbox hospital, over real SSH,
HTTP and TLS: what the inspection sees when a log gains errors or rotates, a function fails, or the
signing server's certificate is about to expire."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from config.settings import CertificateFile, HostConfig, LogFile, Thresholds, load_site
from sandbox import scenarios_hosts as sc
from sandbox.host_trees import app_log_line
from tasks.cert_checks import certificate_files, tls_endpoints
from tasks.health_checks import ebill_functions
from tasks.hosts import HostPool
from tasks.log_checks import log_errors, position_key
from tasks.results import Status, utcnow

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
    assert first.status == Status.OK and first.value == 0 and "首次检查" in first.reason, first.reason
    assert pos[key]["offset"] == Path(path).stat().st_size

    sc.append_log_errors(root, "app1", rel, [_error("开票接口调用失败 billNo=0000001001 code=E1002"), _info("重试成功")])
    [second], pos = log_errors.fn("demo", host, pool, pos)
    assert second.status == Status.WARN and second.value == 1, second.reason
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
    assert critical.status == Status.FAIL and critical.value == 1, critical.reason
    assert "OutOfMemoryError×1" in critical.reason and "Java heap space" in critical.raw


def test_rotation_reads_old_tail_and_new_file_from_its_start(site, root, pool, own_files):
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info("启动完成")] * 20)
    host = _with_logs(site, "app1", _app_log(path))
    _, pos = log_errors.fn("demo", host, pool, {})

    sc.append_log_errors(root, "app1", rel, [_error("before-rotation 推送失败 batch=1")])
    rotated = sc.rotate_log(root, "app1", rel, [_error("after-rotation 推送失败 batch=2"), _info("ok")])
    [rec], pos = log_errors.fn("demo", host, pool, pos)
    assert rec.status == Status.WARN and rec.value == 2, rec.reason
    assert "日志已轮转" in rec.reason and rotated.name in rec.reason
    assert "before-rotation" in rec.raw and "after-rotation" in rec.raw
    assert pos[position_key("app1", path)]["offset"] == Path(path).stat().st_size

    # Rotated again and the old file is gone (compressed away): the new file is still read whole.
    sc.rotate_log(root, "app1", rel, [_error("third-file 归档失败")])
    rotated.unlink()
    [rec], _ = log_errors.fn("demo", host, pool, pos)
    assert rec.status == Status.WARN and rec.value == 1 and "third-file" in rec.raw
    assert "未找到轮转前的文件" in rec.reason


def test_truncation_reads_from_start(site, root, pool, own_files):
    rel, path = own_files("app1")
    sc.append_log_errors(root, "app1", rel, [_info("x" * 80)] * 30)
    host = _with_logs(site, "app1", _app_log(path))
    _, pos = log_errors.fn("demo", host, pool, {})
    inode = Path(path).stat().st_ino
    sc.truncate_log(root, "app1", rel, [_error("签名服务器连接失败 timeout=3000ms")])
    assert Path(path).stat().st_ino == inode
    [rec], pos = log_errors.fn("demo", host, pool, pos)
    assert rec.status == Status.FAIL and rec.value == 1 and "日志被截断" in rec.reason, rec.reason


def test_oracle_alert_codes_and_missing_log(site, root, pool, own_files):
    rel, path = own_files("db1")
    sc.append_log_errors(root, "db1", rel, [
        "2026-11-26T02:00:01.123456+08:00", "ORA-12012: error on auto execute of job \"EBILL\".\"J_STAT\"",
        "ORA-01555: snapshot too old: rollback segment number 7 with name \"_SYSSMU7_1$\" too small",
        "Completed checkpoint up to RBA [0x1a.2.10]"])
    missing = str(sc.host_path(root, "db1", f"log/no-such-{uuid.uuid4().hex[:6]}.log"))
    host = _with_logs(site, "db1", LogFile(path=missing, kind="oracle_alert"), LogFile(path=path, kind="oracle_alert"))
    (gone, alert), pos = log_errors.fn("demo", host, pool, {})
    assert gone.status == Status.ERROR and gone.target == missing and "不存在" in gone.reason
    assert alert.status == Status.FAIL and alert.value == 2, alert.reason
    assert "ORA-01555×1" in alert.reason and "ORA-12012×1" in alert.reason
    assert set(pos) == {position_key("db1", path)}  # the missing log gets no position


def test_unreachable_host_gives_one_error_per_log_and_keeps_positions(site, pool, unused_port):
    host = site.host("app1").model_copy(update={
        "port": unused_port, "logs": [_app_log("/a.log"), _app_log("/b.log")],
        "certificates": [CertificateFile(name="签名证书", path="/c.pem")]})
    before = {position_key("app1", "/a.log"): {"inode": 1, "size": 5, "offset": 5, "head_sha256": "x"}}
    recs, pos = log_errors.fn("demo", host, pool, before)
    assert [(r.status, r.target) for r in recs] == [(Status.ERROR, "/a.log"), (Status.ERROR, "/b.log")]
    assert "HostUnreachable" in recs[0].reason and pos == before
    [cert] = certificate_files.fn("demo", host, pool, TH)
    assert cert.status == Status.ERROR and "HostUnreachable" in cert.reason


# ---------------------------------------------------------------- e-bill functions
def test_health_all_functions_ok_then_one_fails(site, root, sites_dir, unused_port):
    recs = ebill_functions.fn(site)
    assert [r.target for r in recs] == ["开票（issue）", "冲红（red_flush）", "查询（query）", "归档（archive）",
                                        "交付（delivery）", "报表（reports）", "系统管理（admin）"]
    assert all(r.status == Status.OK and r.unit == "ms" for r in recs), [r.reason for r in recs]
    with sc.health_fault(root, "archive", 503):
        recs = {r.target: r for r in ebill_functions.fn(site)}
    assert recs["归档（archive）"].status == Status.FAIL and "HTTP 503" in recs["归档（archive）"].reason
    assert [t for t, r in recs.items() if r.status != Status.OK] == ["归档（archive）"]

    def down(data):
        data["health"]["urls"]["query"] = f"http://127.0.0.1:{unused_port}/health/query"
        del data["health"]["urls"]["admin"]
    recs = {r.target: r for r in ebill_functions.fn(load_site(sites_dir("down", down)))}
    assert recs["查询（query）"].status == Status.FAIL and "调用失败" in recs["查询（query）"].reason
    assert recs["系统管理（admin）"].status == Status.SKIPPED

    [skipped] = ebill_functions.fn(site.model_copy(update={"health": None}))
    assert skipped.status == Status.SKIPPED and "health" in skipped.reason


# ---------------------------------------------------------------- certificates
def test_signing_server_certificate_ok_expiring_expired(site, root, sites_dir, unused_port):
    [ok] = tls_endpoints.fn(site, TH)
    assert ok.status == Status.OK and ok.value == 400 and ok.check == "certificate_expiry", ok.reason
    assert "CN=sign.ebill.sandbox" in ok.reason and "北京时间" in ok.reason
    for days, status in ((30, Status.WARN), (10, Status.FAIL), (-2, Status.FAIL)):
        with sc.tls_cert_days(root, days):
            [rec] = tls_endpoints.fn(site, TH)
        assert (rec.status, rec.value) == (status, days), rec.reason
    assert "已过期 2 天" in rec.reason
    [back] = tls_endpoints.fn(site, TH)
    assert back.value == 400

    def dead(data):
        data["tls_endpoints"].append({"name": "电子票据门户", "address": "127.0.0.1", "port": unused_port})
    good, gone = tls_endpoints.fn(load_site(sites_dir("tls-dead", dead)), TH)
    assert good.status == Status.OK and gone.status == Status.ERROR and "电子票据门户" in gone.target


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
    assert (der.status, der.value) == (Status.WARN, 20), der.reason
    assert missing.status == Status.ERROR and "丢失的证书" in missing.target
