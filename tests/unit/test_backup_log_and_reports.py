from datetime import datetime, timezone

from tasks.backup.folder import parse_backup_log
from tasks.core.reports import local_time, render_both
from tasks.core.results import CheckResult, Status

LOG = """\
2026-11-24T02:00:01+08:00 START job=ebill_full
2026-11-24T02:03:12+08:00 END job=ebill_full status=SUCCESS file=ebill_20261124_0200.dump bytes=123456
garbage line left by a hand edit
2026-11-25T02:00:01 END job=ebill_full status=SUCCESS file=no_offset.dump bytes=1
2026-11-25T02:00:01+08:00 START job=ebill_full
2026-11-25T02:09:40+08:00 END job=ebill_full status=FAILED file=ebill_20261125_0200.dump bytes=0
"""


def test_backup_log_keeps_finished_runs_with_offsets_only():
    runs = parse_backup_log(LOG)
    assert [(r.status, r.file) for r in runs] == [("SUCCESS", "ebill_20261124_0200.dump"),
                                                  ("FAILED", "ebill_20261125_0200.dump")]
    assert runs[0].bytes == 123456
    assert runs[0].finished_at == datetime(2026, 11, 23, 18, 3, 12, tzinfo=timezone.utc)


def test_local_time_uses_site_timezone_not_machine():
    t = datetime(2026, 11, 25, 18, 30, tzinfo=timezone.utc)
    assert local_time(t, "Asia/Shanghai") == "2026-11-26 02:30:00"


def test_inspection_report_lists_every_item_in_chinese():
    results = [
        CheckResult(check="disk_usage", title="服务器磁盘使用率", site="s", host="db1", target="/u01",
                    value=91.0, unit="%", threshold="警告 ≥ 80%，异常 ≥ 90%", status=Status.FAIL, reason="满了"),
        CheckResult(check="tablespace_usage", title="表空间使用率", site="s", host="oracle", target="USERS",
                    value=12.5, unit="%", status=Status.OK),
    ]
    from flows.common import report_rows, suggestions

    ctx = dict(hospital="测试医院", title="巡检报告", kind_zh="季度巡检", period="2026-Q4", timezone="Asia/Shanghai",
               started_local="x", finished_local="y", flow_run_id="r1", verdict="FAIL", verdict_zh="异常",
               engineer="", summary=[], results=report_rows(results, "Asia/Shanghai"),
               suggestions=suggestions(results), evidence_prefix="s/inspection/2026/x/")
    out = render_both("inspection", **ctx)
    for text in out.values():
        assert "测试医院" in text and "巡检报告" in text
        assert "服务器磁盘使用率" in text and "表空间使用率" in text and "91.0 %" in text
        assert "【异常】服务器磁盘使用率（db1 /u01）：满了" in text
    assert "<script" not in render_both("inspection", **{**ctx, "hospital": "<script>x</script>"})["report.html"]
