"""Year-end on the file server (tasks/yearend/files.py, fragmentation.py) over real SSH.

Each test module starts its own sandbox SSH hosts in a temporary folder (sandbox.sshd + host_trees:
files1 with layout files 2022 to today), because these tests pack, corrupt and remove files: never
on the shared sandbox.
"""
from __future__ import annotations

import hashlib
import shlex
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from typer import Typer
from typer.testing import CliRunner

from config.settings import Site
from sandbox import host_trees, sshd
from sandbox.ports import pid_alive
from flows.cli_yearend_extract import register
from tasks.approvals.plan import Plan, PlanStep
from tasks.core.results import Status
from tasks.yearend import files as yf
from tasks.yearend.fragmentation import fragmentation, plan_defragmentation


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    root = tmp_path_factory.mktemp("yearend_files")
    host_trees.build(root, datetime.now(timezone.utc))
    state = sshd.start(root, {})
    yield root.resolve(), state
    sshd.stop(state)
    assert not pid_alive(state["pid"])


def make_site(hosts, **files) -> Site:
    return Site.model_validate(site_data(hosts, **files))


def site_data(hosts, **files) -> dict:
    root, state = hosts
    year_end = {"host": "files1", "layout_root": str(root / "hosts/files1/data/layout"),
                "archive_dir": str(root / "hosts/files1/data/archive"), **files}
    return {
        "site": "yefiles", "name": "年结测试医院",
        "database": {"dialect": "postgresql", "dsn": "host=127.0.0.1 dbname=x", "user": "ro", "password": {"env": "NONE"}},
        "evidence": {"endpoint": "127.0.0.1:1", "bucket": "none", "access_key": {"env": "NONE"},
                     "secret_key": {"env": "NONE"}},
        "hosts": [{"name": "files1", "role": "file", "address": "127.0.0.1", "port": state["ssh_port_files1"],
                   "user": "ebops", "key_file": state["client_key"], "known_hosts": state["known_hosts"],
                   "connect_timeout_s": 120, "command_timeout_s": 120}],
        "year_end": {"files": year_end},
    }


def layout(hosts) -> Path:
    return hosts[0] / "hosts/files1/data/layout"


def step(steps: list[PlanStep], step_id: str) -> PlanStep:
    return next(s for s in steps if s.id == step_id)


def test_plan_packs_months_older_than_two_full_years_with_quoted_commands(hosts):
    steps = yf.plan_file_archives(make_site(hosts), 2026)
    ids = [s.id for s in steps]
    assert ids == [f"layout_archive:{y}-{m:02d}" for y in (2022, 2023, 2024) for m in range(1, 13)]
    first = steps[0]
    argv = shlex.split(first.text)
    assert argv[:2] == ["sh", "-c"] and argv[4:] == [str(layout(hosts)), "2022/01", str(
        hosts[0] / "hosts/files1/data/archive/layout-2022-01.tar.gz"), str(
        hosts[0] / "hosts/files1/data/archive/layout-2022-01.tar.gz.sha256"), "tar.gz"]
    assert shlex.join(argv) == first.text and first.kind == "file" and first.target.startswith("files1:")
    # removal only where the site allows it, after every archive step
    allowed = [s.id for s in yf.plan_file_archives(make_site(hosts, remove_originals=True), 2026)]
    assert allowed[:36] == ids and allowed[36:] == [i.replace("archive", "remove") for i in ids]


def test_archive_manifest_holds_every_member_sha256_and_a_second_run_does_nothing(hosts):
    site = make_site(hosts)
    st = step(yf.plan_file_archives(site, 2026), "layout_archive:2023-02")
    assert not yf.already_done(site, st)
    out = yf.execute_step(site, st)
    assert out.status == "done", out.output
    originals = sorted((layout(hosts) / "2023/02").iterdir())
    assert len(originals) == 3
    expected = [{"path": f"2023/02/{p.name}", "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                 "size": p.stat().st_size} for p in originals]
    assert out.facts["members"] == expected
    assert out.facts["member_count"] == 3 and out.facts["member_bytes"] == sum(e["size"] for e in expected)
    archive = Path(out.facts["archive"])
    assert archive.stat().st_size == out.facts["archive_bytes"] > 0
    listed = Path(out.facts["member_list"]).read_text().splitlines()
    assert listed == [f"{e['sha256']}  {e['path']}" for e in expected]
    assert all(p.exists() for p in originals)  # remove_originals is false: nothing removed
    evidence = yf.member_lists([out])
    assert evidence == {"layout_archives/2023-02.sha256.txt": "".join(
        f"{e['sha256']}  {e['size']}  {e['path']}\n" for e in expected)}
    mtime = archive.stat().st_mtime_ns
    again = yf.execute_step(site, st)
    assert again.status == "already_done" and "未重复执行" in again.output
    assert archive.stat().st_mtime_ns == mtime and again.facts["member_count"] == 3


def test_corrupted_archive_blocks_removal(hosts):
    site = make_site(hosts, remove_originals=True)
    steps = yf.plan_file_archives(site, 2026)
    assert yf.execute_step(site, step(steps, "layout_archive:2022-05")).status == "done"
    archive = hosts[0] / "hosts/files1/data/archive/layout-2022-05.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the compressed members
    archive.write_bytes(bytes(data))
    originals = sorted((layout(hosts) / "2022/05").iterdir())
    before = {p: p.read_bytes() for p in originals}
    out = yf.execute_step(site, step(steps, "layout_remove:2022-05"))
    assert out.status == "failed" and out.facts["exit_code"] in (11, 12), out.output
    assert {p: p.read_bytes() for p in originals} == before  # nothing removed
    assert not yf.already_done(site, step(steps, "layout_archive:2022-05"))
    # re-running the archive step rebuilds it; then removal goes through
    assert yf.execute_step(site, step(steps, "layout_archive:2022-05")).status == "done"
    assert yf.execute_step(site, step(steps, "layout_remove:2022-05")).status == "done"
    assert not (layout(hosts) / "2022/05").exists()


def test_changed_original_is_not_removed(hosts):
    site = make_site(hosts, remove_originals=True)
    steps = yf.plan_file_archives(site, 2026)
    assert yf.execute_step(site, step(steps, "layout_archive:2022-06")).status == "done"
    victim = sorted((layout(hosts) / "2022/06").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"%changed after packing\n")
    out = yf.execute_step(site, step(steps, "layout_remove:2022-06"))
    assert out.status == "failed" and out.facts["exit_code"] == 13
    assert len(list((layout(hosts) / "2022/06").iterdir())) == 3


def test_removal_then_extract_is_byte_identical_and_second_execute_says_done(hosts, tmp_path):
    site = make_site(hosts, remove_originals=True)
    steps = [s for s in yf.plan_file_archives(site, 2026) if s.id.endswith("2024-11")]
    saved = {p.name: p.read_bytes() for p in (layout(hosts) / "2024/11").iterdir()}
    first = [yf.execute_step(site, s) for s in steps]
    assert [o.status for o in first] == ["done", "done"] and first[1].facts["removed"] == 3
    assert not (layout(hosts) / "2024/11").exists()
    second = [yf.execute_step(site, s) for s in steps]
    assert [o.status for o in second] == ["already_done", "already_done"]
    assert all("本次未重复执行" in o.output for o in second)
    # the plan renders the same after the originals are gone: its approval still holds
    replanned = [s for s in yf.plan_file_archives(site, 2026) if s.id.endswith("2024-11")]
    assert Plan(site="x", duty="year_end", title="t", requested_by="a", steps=steps).sha256() == \
        Plan(site="x", duty="year_end", title="t", requested_by="a", steps=replanned).sha256()
    for name, data in saved.items():
        code, number = name[:8], name[8:18]
        got = yf.extract(site, code, number, tmp_path)
        assert got.name == name and got.read_bytes() == data
    with pytest.raises(FileNotFoundError):
        yf.extract(site, "44010124", "0000000000", tmp_path)
    with pytest.raises(yf.YearEndFilesError):
        yf.extract(site, "4401012;", "0000000001", tmp_path)


def test_zip_archives_verify_and_extract(hosts, tmp_path):
    site = make_site(hosts, archive_format="zip", archive_dir=str(hosts[0] / "hosts/files1/data/archive-zip"))
    st = step(yf.plan_file_archives(site, 2026), "layout_archive:2023-07")
    out = yf.execute_step(site, st)
    assert out.status == "done" and out.facts["archive"].endswith("layout-2023-07.zip")
    assert yf.already_done(site, st)
    original = sorted((layout(hosts) / "2023/07").iterdir())[-1]
    got = yf.extract(site, original.name[:8], original.name[8:18], tmp_path)
    assert got.read_bytes() == original.read_bytes()


def test_a_tampered_step_text_is_refused(hosts):
    site = make_site(hosts)
    st = step(yf.plan_file_archives(site, 2026), "layout_archive:2023-03")
    bad = st.model_copy(update={"text": st.text + "; rm -rf /tmp/x"})
    with pytest.raises(yf.YearEndFilesError, match="re-plan"):
        yf.execute_step(site, bad)


def test_fragmentation_skipped_without_tools_and_measured_with_them(hosts, tmp_path):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    skipped = fragmentation(make_site(hosts, tool_dirs=[str(empty)]))
    assert skipped and all(r.status is Status.SKIPPED for r in skipped)
    assert {r.code for r in skipped} <= {"tool_missing", "not_applicable"}
    assert any(r.code == "tool_missing" and "filefrag" in r.reason for r in skipped)
    measured = {r.check: r for r in fragmentation(make_site(hosts))}
    tools = [d for d in ("/usr/sbin", "/sbin") if Path(d, "filefrag").exists()]
    if not tools:
        pytest.fail("this machine has no filefrag (e2fsprogs): the measured half cannot run")
    ff = measured["fragmentation_filefrag"]
    assert ff.status in (Status.OK, Status.WARN) and ff.value >= 1.0
    if "fragmentation_e4defrag" in measured and measured["fragmentation_e4defrag"].status is not Status.SKIPPED:
        assert isinstance(measured["fragmentation_e4defrag"].value, int)
    assert plan_defragmentation(make_site(hosts), [r for r in measured.values() if r.status is Status.OK]) == []


def test_cli_extract_writes_the_file_and_answers_bad_input_in_one_line(hosts, tmp_path, monkeypatch):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "yefiles.yaml").write_text(yaml.safe_dump(site_data(hosts), allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("EBOPS_SITES_DIR", str(sites))
    site = make_site(hosts)
    assert yf.execute_step(site, step(yf.plan_file_archives(site, 2026), "layout_archive:2023-09")).status in (
        "done", "already_done")
    original = sorted((layout(hosts) / "2023/09").iterdir())[0]
    group = Typer()
    register(group)
    group.command("noop")(lambda: None)  # a group of one command would take the command's arguments itself
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(group, ["extract", "yefiles", original.name[:8], original.name[8:18], "--dest", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / original.name).read_bytes() == original.read_bytes()
    bad = runner.invoke(group, ["extract", "yefiles", "4401", "0000000001"])
    assert bad.exit_code == 2 and "8 digits" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(group, ["extract", "yefiles", "44010123", "0000000000", "--dest", str(out)])
    assert missing.exit_code == 1 and "no layout file" in missing.output
