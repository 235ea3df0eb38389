"""Alerts through apprise to a real HTTP receiver on 127.0.0.1 (apprise's json:// plugin)."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.settings import Site
from tasks.core.alerts import compose_message, findings_for, send_alerts, validate_notify_urls
from tasks.core.results import CheckResult, Status

PAYER, ID_NO, PHONE = "欧阳娜娜", "110101199003071234", "13812345678"


class Receiver:
    """A chat robot stand-in: records every POSTed JSON body before answering 200."""

    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(data))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    with Receiver() as r:
        yield r


def make_site(notify: list[dict]) -> Site:
    return Site.model_validate({
        "site": "t1", "name": "测试医院",
        "database": {"dialect": "postgresql", "dsn": "host=127.0.0.1 dbname=ebill", "user": "ro",
                     "password": {"env": "T1_DB_PASSWORD"}},
        "evidence": {"endpoint": "127.0.0.1:9000", "bucket": "ebill-evidence",
                     "access_key": {"env": "A"}, "secret_key": {"env": "B"}},
        "notify": notify,
    })


def rec(status: Status, check: str = "disk_usage", host: str | None = "db1", target: str = "/u01",
        reason: str = "", title: str = "服务器磁盘使用率") -> CheckResult:
    return CheckResult(check=check, title=title, site="t1", host=host, target=target, status=status,
                       reason=reason or f"{status.value} reason")


RESULTS = [
    rec(Status.OK, target="/ok-mount"),
    rec(Status.WARN, target="/u01", reason="使用率 85%"),
    rec(Status.FAIL, check="tablespace_usage", host=None, target="ts_ebill_2027", title="表空间使用率", reason="使用率 95%"),
    rec(Status.ERROR, check="last_backup", host="db1", target="", title="最近一次备份", reason="ConnectionRefused"),
    rec(Status.SKIPPED, check="bill_stock", host=None, target="", title="票据库存", reason="未配置"),
]

SEND = dict(title="巡检报告", report_url="http://127.0.0.1:9/ebill-evidence/t1/report.html?X-Amz-Signature=abc",
            evidence_prefix="t1/inspection/2027/20270105T010203Z_run1/")


def hook(monkeypatch, port: int, var: str = "T1_ROBOT_URL", path: str = "hook") -> dict:
    monkeypatch.setenv(var, f"json://127.0.0.1:{port}/{path}")
    return {"env": var}


def test_one_digest_with_every_finding_and_no_ok_item(receiver, monkeypatch):
    site = make_site([{"name": "信息科群", "url": hook(monkeypatch, receiver.port)}])
    records = send_alerts(site, RESULTS, **SEND)
    assert records == [{"target": "信息科群", "status": "sent", "findings": 3, "error": None}]
    [body] = receiver.bodies
    text = body["message"]
    assert "测试医院" in text and "巡检报告" in text
    assert "【警告】服务器磁盘使用率（db1 /u01）：使用率 85%" in text
    assert "【异常】表空间使用率（ts_ebill_2027）" in text and "【无法检查】最近一次备份" in text
    assert "/ok-mount" not in text and "票据库存" not in text  # OK and SKIPPED are not alerts
    assert SEND["report_url"] in text and SEND["evidence_prefix"] in text
    # worst first
    assert text.index("无法检查】") < text.index("异常】") < text.index("警告】")


def test_each_finding_once_per_run(receiver, monkeypatch):
    site = make_site([{"name": "群", "url": hook(monkeypatch, receiver.port)}])
    dup = rec(Status.WARN, target="/u01", reason="使用率 85%")
    records = send_alerts(site, [dup, dup, rec(Status.WARN, target="/u01", reason="again"), rec(Status.WARN, target="/u02")], **SEND)
    assert records[0]["findings"] == 2
    [body] = receiver.bodies
    assert body["message"].count("/u01") == 1 and "/u02" in body["message"]


def test_min_status_filters_per_target(receiver, monkeypatch):
    site = make_site([
        {"name": "值班群", "url": hook(monkeypatch, receiver.port, "R1", "all")},
        {"name": "主任", "url": hook(monkeypatch, receiver.port, "R2", "boss"), "min_status": "FAIL"},
        {"name": "只看无法检查", "url": hook(monkeypatch, receiver.port, "R3", "err"), "min_status": "ERROR"},
    ])
    records = send_alerts(site, RESULTS[:3], **SEND)  # OK, WARN, FAIL
    assert [(r["target"], r["status"], r["findings"]) for r in records] == [
        ("值班群", "sent", 2), ("主任", "sent", 1), ("只看无法检查", "skipped", 0)]
    assert len(receiver.bodies) == 2
    boss = receiver.bodies[1]["message"]
    assert "表空间使用率" in boss and "服务器磁盘使用率" not in boss


def test_personal_data_in_a_reason_never_reaches_the_robot(receiver, monkeypatch):
    site = make_site([{"name": "群", "url": hook(monkeypatch, receiver.port)}])
    leak = rec(Status.FAIL, check="invoice_quality", host=None, target="bill 0001",
               reason=f"缴款人：{PAYER} 身份证 {ID_NO} 电话 {PHONE} payer_name={PAYER}")
    assert send_alerts(site, [leak], **SEND)[0]["status"] == "sent"
    raw = json.dumps(receiver.bodies, ensure_ascii=False)
    for secret in (PAYER, ID_NO, PHONE, PHONE[3:7] + PHONE[7:]):
        assert secret not in raw
    assert "欧***" in raw and "138****5678" in raw


def test_receiver_down_gives_failed_record_and_no_exception(monkeypatch, unused_port, caplog):
    site = make_site([{"name": "群", "url": hook(monkeypatch, unused_port)}])
    with caplog.at_level(logging.WARNING):
        [record] = send_alerts(site, RESULTS, **SEND)
    assert record["status"] == "failed" and record["findings"] == 3
    assert "群" in record["error"]
    assert f"127.0.0.1:{unused_port}" not in record["error"]  # the URL is the secret
    assert "告警未送达" in caplog.text and f"{unused_port}/hook" not in caplog.text


def test_missing_secret_fails_with_hint(monkeypatch, receiver):
    monkeypatch.delenv("T1_NO_SUCH_URL", raising=False)
    site = make_site([{"name": "缺密钥", "url": {"env": "T1_NO_SUCH_URL"}},
                      {"name": "正常", "url": hook(monkeypatch, receiver.port)}])
    missing, ok = send_alerts(site, RESULTS, **SEND)
    assert missing["status"] == "failed" and "缺密钥" in missing["error"] and "T1_NO_SUCH_URL" in missing["error"]
    assert "hint" in missing["error"]
    assert ok["status"] == "sent" and len(receiver.bodies) == 1  # the other target still gets it


def test_unparseable_url_names_the_target_and_hides_the_key(monkeypatch):
    monkeypatch.setenv("T1_BAD_URL", "wechat-robot://SECRETKEY123456")
    site = make_site([{"name": "错协议", "url": {"env": "T1_BAD_URL"}}])
    [record] = send_alerts(site, RESULTS, **SEND)
    assert record["status"] == "failed" and "错协议" in record["error"] and "env:T1_BAD_URL" in record["error"]
    assert "SECRETKEY123456" not in record["error"]
    [problem] = validate_notify_urls(site)
    assert problem.field == "notify[0].url" and "错协议" in problem.message and "env:T1_BAD_URL" in problem.hint
    assert "SECRETKEY123456" not in str(problem)


def test_validate_accepts_robot_urls(monkeypatch):
    monkeypatch.setenv("T1_WECOM", "wecombot://abcdef0123456789")
    monkeypatch.delenv("T1_ABSENT", raising=False)
    site = make_site([{"name": "企业微信", "url": {"env": "T1_WECOM"}}, {"name": "缺", "url": {"env": "T1_ABSENT"}}])
    [problem] = validate_notify_urls(site)
    assert problem.field == "notify[1].url" and problem.message.startswith("通知目标 缺") and "T1_ABSENT" in problem.message
    assert validate_notify_urls(site, missing_ok=True) == []   # config check: read where the worker runs


def test_long_digest_is_cut_under_the_wecom_limit_and_keeps_the_link():
    site = make_site([])
    many = [rec(Status.FAIL, target=f"/data{i:03d}", reason="磁盘使用率超过阈值，需要清理归档日志" * 2) for i in range(120)]
    found = findings_for(many)
    text = compose_message(site, found, limit_bytes=2048, **SEND)
    assert len(text.encode("utf-8")) <= 2048
    assert "/data000" in text and "/data119" not in text
    shown = text.count("【异常】")
    assert f"…另有 {120 - shown} 项，详见报告" in text
    assert text.endswith(f"证据包：{SEND['evidence_prefix']}") and SEND["report_url"] in text


def test_no_targets_or_no_findings_sends_nothing(receiver, monkeypatch):
    assert send_alerts(make_site([]), RESULTS, **SEND) == []
    site = make_site([{"name": "群", "url": hook(monkeypatch, receiver.port)}])
    assert send_alerts(site, [rec(Status.OK)], **SEND) == [{"target": "群", "status": "skipped", "findings": 0, "error": None}]
    assert receiver.bodies == []


def test_the_captured_logger_is_apprises():
    """alerts.py names apprise's logger without importing apprise (a worker's flow run imports
    the module in every new process); the name must stay apprise's own."""
    from apprise.logger import LOGGER_NAME

    from tasks.core import alerts

    assert alerts.LOGGER_NAME == LOGGER_NAME
