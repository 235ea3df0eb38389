"""Pure logic of the log, certificate and health checks: patterns, ORA codes, where to read a log
from, certificate parsing and the days-to-expiry grading."""
from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization

from config.hosts import LogFile
from config.settings import Thresholds
from sandbox.app_services import make_certificate, pem
from tasks.inspection.certs import cert_info, days_to_expiry, expiry_result, grade_days, load_certificate
from tasks.inspection.health import function_target
from tasks.inspection.log_findings import (
    DEFAULT_ORA_CRITICAL,
    bounded,
    complete_lines,
    decode_log,
    find_errors,
    head_digest,
    judge,
    plan_read,
)
from tasks.inspection.logs import HEAD_BYTES, load_positions, save_positions
from tasks.core.reason_codes import Code
from tasks.core.results import Status

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
TH = Thresholds()

APP = LogFile(path="/x/app.log", kind="application", error_patterns=["ERROR", "Exception"],
              critical_patterns=["OutOfMemoryError"])
ORA = LogFile(path="/u01/alert_ebill.log", kind="oracle_alert")


# ---------------------------------------------------------------- patterns
def test_error_and_critical_lines_are_counted_per_pattern():
    text = ("2026-11-26 10:00:00.001 INFO  [main] c.e.A - errorCount=0 ok\n"
            "2026-11-26 10:00:01.002 ERROR [main] c.e.A - 开票失败 java.lang.IllegalStateException: x\n"
            "2026-11-26 10:00:02.003 ERROR [main] c.e.A - java.lang.OutOfMemoryError: Java heap space\n"
            "\tat c.e.ebill.Foo.bar(Foo.java:12)\n")
    f = find_errors(text, APP)
    assert len(f.error_lines) == 2 and len(f.critical_lines) == 1
    assert f.by_pattern == {"ERROR": 2, "Exception": 1}
    assert f.critical_by_pattern == {"OutOfMemoryError": 1}
    status, reason = judge(f, 0)
    assert status == Status.FAIL
    assert "新增 2 行错误" in reason and "OutOfMemoryError×1" in reason and "ERROR×2" in reason


def test_patterns_are_case_sensitive_regexes_and_bad_regex_is_literal():
    log = LogFile(path="/l", error_patterns=[r"FATAL|PANIC", "签名(失败"], critical_patterns=[])
    f = find_errors("fatal lower\nPANIC: x\n签名(失败 y\n", log)
    assert f.error_lines == ["PANIC: x", "签名(失败 y"]
    assert judge(f, 0)[0] == Status.WARN


def test_oracle_codes_counted_each_with_default_critical_list():
    text = ("Thu Nov 26 02:00:00 2026\n"
            "ORA-01555: snapshot too old: rollback segment number 3 with name \"_SYSSMU3$\" too small\n"
            "Errors in file /u01/app/oracle/diag/rdbms/ebill/trace/ebill_ora_123.trc:\n"
            "ORA-00600: internal error code, arguments: [kcratr_nab_less_than_odr]\n"
            "ORA-12012: error on auto execute of job 42\nORA-12012: error on auto execute of job 43\n")
    f = find_errors(text, ORA)
    assert f.by_pattern == {"ORA-12012": 2, "ORA-01555": 1, "ORA-00600": 1}
    assert len(f.error_lines) == 4  # "Errors in file" matches none of ERROR, Exception, ORA-nnnnn
    assert f.critical_by_pattern == {"ORA-01555": 1, "ORA-00600": 1}
    status, reason = judge(f, 0)
    assert status == Status.FAIL and "ORA-12012×2" in reason
    assert set(DEFAULT_ORA_CRITICAL) >= {"ORA-00600", "ORA-07445", "ORA-01578", "ORA-00257", "ORA-04031"}


def test_oracle_configured_critical_replaces_default():
    log = ORA.model_copy(update={"critical_patterns": ["ORA-00257"]})
    f = find_errors("ORA-00600: internal error\n", log)
    assert judge(f, 0)[0] == Status.WARN and f.by_pattern == {"ORA-00600": 1}


def test_no_new_errors_is_ok_but_unread_bytes_are_not():
    empty = find_errors("INFO fine\n", APP)
    assert judge(empty, 0) == (Status.OK, "无新增错误")
    status, reason = judge(empty, 9 * 1048576)
    assert status == Status.WARN and "跳过了 9.0 MiB 未检查" in reason


def test_gbk_log_is_decoded():
    assert decode_log("错误 ERROR 开票失败\n".encode("gbk")) == "错误 ERROR 开票失败\n"
    assert decode_log("ok ✓\n".encode()) == "ok ✓\n"


# ---------------------------------------------------------------- where to read from
HEAD = b"2026-11-20 00:00:00.000 INFO  [main] Started\n" * 10


def _prev(offset=1000, size=1000, inode=7, head=HEAD):
    n = min(HEAD_BYTES, size)
    return {"inode": inode, "size": size, "offset": offset, "head_sha256": head_digest(head, n), "head_len": n}


@pytest.mark.parametrize("prev,inode,size,head,start,restart", [
    (None, 7, 5000, HEAD, 0, "first"),
    (_prev(), 7, 1500, HEAD, 1000, None),              # appended
    (_prev(), 7, 1000, HEAD, 1000, None),              # nothing new
    (_prev(), 8, 5000, HEAD, 0, "rotated"),            # renamed away, new file
    (_prev(), 7, 400, HEAD, 0, "truncated"),           # copytruncate
    (_prev(), 7, 1500, b"X" + HEAD[1:], 0, "rewritten"),  # same inode, other content
    (_prev(offset=90, size=100, head=HEAD[:100]), 7, 600, HEAD, 90, None),  # short log that grew
])
def test_plan_read(prev, inode, size, head, start, restart):
    plan = plan_read(prev, inode, size, head)
    assert (plan.start, plan.restart, plan.skipped) == (start, restart, 0)


def test_plan_read_is_bounded_to_newest_bytes():
    plan = plan_read(_prev(), 7, 1000 + 50, HEAD, max_bytes=20)
    assert (plan.start, plan.skipped) == (1030, 30)
    assert bounded(0, 10, 20) == (0, 0) and bounded(0, 100, 20) == (80, 80)


def test_complete_lines_keeps_partial_line_for_next_run():
    assert complete_lines(b"a\nb\nparti", False, False) == (b"a\nb\n", 4)
    assert complete_lines(b"parti", False, False) == (b"", 0)
    # A bounded read starts one byte early: a newline there means no partial first line.
    assert complete_lines(b"\nx\ny\n", True, True) == (b"x\ny\n", 5)
    assert complete_lines(b"ial\nx\n", True, True) == (b"x\n", 6)
    assert complete_lines(b"endless", True, True) == (b"", 7)


def test_positions_round_trip_atomic_and_private(tmp_path):
    f = tmp_path / "state" / "demo" / "log_positions.json"
    assert load_positions(f) == {}
    data = {"app1:/x/app.log": _prev()}
    save_positions(f, data)
    assert load_positions(f) == data
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert [p.name for p in f.parent.iterdir()] == ["log_positions.json"]  # no temporary left
    f.write_text("{not json")
    assert load_positions(f) == {}
    f.write_text(json.dumps([1, 2]))
    assert load_positions(f) == {}


# ---------------------------------------------------------------- certificates
def test_pem_chain_first_certificate_and_der():
    ca = make_certificate("测试 CA", 3650, ca=True, now=NOW)
    leaf, _ = make_certificate("sign.test", 30, issuer=ca, now=NOW)
    info = cert_info(load_certificate(b"junk before\n" + pem(leaf, ca[0])))
    assert (info.subject_cn, info.issuer_cn) == ("sign.test", "测试 CA") and not info.self_signed
    der = cert_info(load_certificate(leaf.public_bytes(serialization.Encoding.DER)))
    assert der == info
    with pytest.raises(ValueError, match="not a PEM or DER"):
        load_certificate(b"hello")


@pytest.mark.parametrize("days,status,value", [
    (400, Status.OK, 400), (60, Status.OK, 60), (59, Status.WARN, 59), (15, Status.WARN, 15),
    (14, Status.FAIL, 14), (0, Status.FAIL, 0), (-3, Status.FAIL, -3),
])
def test_days_to_expiry_grading(days, status, value):
    cert, _ = make_certificate("sign.test", days, now=NOW)
    info = cert_info(cert)
    got_days, got_status, _ = grade_days(info, NOW + timedelta(hours=1), TH)
    assert (got_days, got_status) == (value, status)


def test_expired_and_not_yet_valid_reasons_and_local_time():
    cert, _ = make_certificate("sign.test", -3, now=NOW)
    r = expiry_result(cert_info(cert), NOW, TH, site="t", target="签名服务器", host=None, started_at=NOW, source="x")
    assert r.status == Status.FAIL and r.unit == "天" and r.value == -3
    assert r.code == Code.CERT_EXPIRED and "（自签名）" in r.reason
    # not_after = NOW - 3 d + 12 h = 2026-11-23 14:00 UTC = 22:00 Beijing time
    assert "2026-11-23 22:00:00（北京时间）" in r.reason
    fresh, _ = make_certificate("sign.test", 100, now=NOW + timedelta(days=5))
    assert grade_days(cert_info(fresh), NOW, TH)[1] == Status.FAIL
    assert days_to_expiry(NOW + timedelta(days=14, hours=23), NOW) == 14


def test_health_target_names_function_in_chinese():
    assert function_target("red_flush") == "冲红（red_flush）"
