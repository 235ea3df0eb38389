"""The one-line summary of a run and the shared table printer (flows/common.py, flows/cli_output.py)."""
from __future__ import annotations

import io
import json

from rich.console import Console

from flows.cli_output import OutputFormat, emit, print_table
from flows.common import RunOutcome, VerdictFailed, finish, summary_line
from tasks.evidence.bundle import StoredBundle
from tasks.core.results import CheckResult, Status

PREFIX = "demo/invoice_quality/2026/20261201T010203Z_0123456789abcdef0123456789abcdef/"
BUNDLE = StoredBundle(PREFIX, "ab" * 32, "store")


def _rule(n: int, status: Status = Status.FAIL) -> CheckResult:
    # As tasks/quality/records.py builds them: the rule id is both in the title and the target.
    return CheckResult(check="invoice_quality", title=f"DQ{n:02d} 规则{n}", site="demo", target=f"DQ{n:02d}",
                       status=status)


def test_summary_names_each_rule_once_and_says_how_many_more():
    results = [_rule(n) for n in range(1, 23) if n != 5] + [_rule(5, Status.OK)]
    line = summary_line(RunOutcome("demo", "invoice_quality", Status.FAIL, results, BUNDLE))
    assert "and 11 more" in line  # 21 failing rules, 10 named
    assert line.count("DQ01") == 1 and "DQ01 规则1: FAIL" in line
    assert "DQ05" not in line and "DQ22" not in line  # OK is no problem; past the 10th is counted, not named
    assert "\n" not in line and PREFIX in line


def test_summary_counts_repeats_and_puts_worst_first():
    disk = [CheckResult(check="disk_usage", title="服务器磁盘使用率", site="demo", host="db1", target="/u01",
                        status=Status.WARN)] * 3
    err = CheckResult(check="interface_calls", title="接口调用", site="demo", host="postgresql", target="his_api",
                      status=Status.ERROR)
    line = summary_line(RunOutcome("demo", "inspection", Status.ERROR, disk + [err], BUNDLE),
                        failing=lambda s: s is not Status.OK)
    assert line.index("接口调用") < line.index("服务器磁盘使用率")
    assert "服务器磁盘使用率 db1 /u01: WARN ×3" in line


def test_verdict_failed_message_is_the_summary():
    results = [_rule(n) for n in range(1, 23)]
    site = type("S", (), {"site": "demo"})()  # finish() reads only .site
    try:
        finish(site, "invoice_quality", results, BUNDLE)
    except VerdictFailed as exc:
        assert "and 12 more" in str(exc) and str(exc).count("DQ03") == 1
    else:
        raise AssertionError("a FAIL verdict must fail the run")


def _not_a_terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=80), buf  # what rich assumes for a pipe or a log


def test_table_off_a_terminal_keeps_keys_and_chinese_on_one_line():
    console, buf = _not_a_terminal()
    reason = "2027年只有模板 2027.yaml (status: template)，国务院通知尚未录入; 提示: 通知发布后按 README 写入"
    emit(OutputFormat.table, console, title="t", columns=("prefix", "reason"), rows=[(PREFIX, reason)], data=None,
         notes=[f"evidence bundle: {PREFIX} (store)"])
    out = buf.getvalue()
    row = next(line for line in out.splitlines() if PREFIX in line)
    assert reason in row  # neither the key nor the Chinese text folded into a second line
    assert f"evidence bundle: {PREFIX} (store)" in out.splitlines()


def test_tsv_and_json_carry_every_cell_whole(capsys):
    console, _ = _not_a_terminal()
    rows = [(1, PREFIX, "含\t制表符\n和换行")]
    emit(OutputFormat.tsv, console, title="t", columns=("#", "prefix", "note"), rows=rows, data=None, notes=["n"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["#\tprefix\tnote", f"1\t{PREFIX}\t含 制表符 和换行", "# n"]
    emit(OutputFormat.json, console, title="t", columns=(), rows=[], data=[{"prefix": PREFIX}])
    assert json.loads(capsys.readouterr().out) == [{"prefix": PREFIX}]


def test_markup_like_text_is_printed_as_is():
    console, buf = _not_a_terminal()
    emit(OutputFormat.table, console, title="t", columns=("reason",), rows=[("[bold]not a style[/]",)], data=None)
    assert "[bold]not a style[/]" in buf.getvalue()


def test_terminal_table_still_fits_the_window():
    buf = io.StringIO()
    console = Console(file=buf, width=60, force_terminal=True, color_system=None)
    from rich.table import Table
    t = Table("a", "b")
    t.add_row("x" * 100, "y")
    print_table(console, t)
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 60
