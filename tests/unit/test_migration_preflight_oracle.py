"""The preflight on an Oracle migration: the target's free space against what RMAN DUPLICATE
writes (the whole database) or Data Pump imports (the vendor's schema). No Oracle runs here: each
side is a stand-in (tests/unit/test_migration_oracle.CannedOracle) that answers canned rows and
parses every statement it receives with sqlglot's oracle dialect; df and sqlplus over SSH are
stand-ins with canned output too.
"""
from __future__ import annotations

from datetime import datetime, timezone


from config.settings import load_site
from tasks.connect.ssh import CommandResult
from tasks.core.results import Status
from tasks.migration import preflight
from tasks.migration.journal import PhaseRun
from tests.unit import test_migration_pure as pure
from tests.unit.test_migration_oracle import CannedOracle, _sides
from tests.unit.test_migration_pure import _to_oracle, migration

site_dir = pure.site_dir  # the demo site file in a temporary folder (a fixture)
MIB, GIB = 1048576, 1024 ** 3
VERSION = {"v$version": [{"version": "Oracle Database 19c Enterprise Edition", "num": "19.0.0.0.0"}]}


class Host:
    """A stand-in for the target's database host over SSH: df answers `free` bytes on /u01,
    sqlplus answers an auxiliary instance started NOMOUNT."""

    def __init__(self, free: int):
        self.free = free

    def run(self, argv, timeout=None):
        if argv[:2] == ["env", "LC_ALL=C"]:
            out = (f"Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                   f"/dev/sdb1 {400 * GIB // 1024} 1 {self.free // 1024} 1% /u01\n")
        else:
            out = "\nSTARTED|19.0.0.0.0\n"
        now = datetime.now(timezone.utc)
        return CommandResult("db2", " ".join(argv), 0, out, "", now, now)


def _source(schema_bytes: int, database_bytes: int) -> CannedOracle:
    return CannedOracle({**VERSION, "FROM dba_data_files": [{"bytes": database_bytes}],
                         "SUM(bytes) AS bytes FROM dba_segments": [{"bytes": schema_bytes}],
                         "DISTINCT tablespace_name": [{"name": "EBILL_DATA"}]})


class Users(CannedOracle):
    """The target: empty, with the source's tablespace."""

    def __init__(self, there: set[str]):
        super().__init__({**VERSION, "dba_objects": [{"n": 0}], "dba_tablespaces": [{"name": "EBILL_DATA"}]})


def _preflight(m, monkeypatch, source, target, free: int) -> dict:
    _sides(monkeypatch, source, target, m)
    m.session = lambda name: Host(free)                      # type: ignore[method-assign]
    ph = PhaseRun("preflight", "demo")
    preflight.versions_and_size(m, ph)
    return {r.title.split("：", 1)[1]: r for r in ph.results}


def test_rman_duplicate_needs_room_for_the_whole_database_datapump_for_the_schema(site_dir, monkeypatch):
    """Schema 10 GiB, database 100 GiB, 50 GiB free: enough for impdp (15 GiB), not for DUPLICATE (150 GiB)."""
    site_dir(_to_oracle("rman_duplicate"))
    m = migration(load_site("demo"))
    by = _preflight(m, monkeypatch, _source(10 * GIB, 100 * GIB), Users(set()), 50 * GIB)
    space = by["目标服务器剩余空间"]
    assert space.status is Status.FAIL and space.code == "migration_space_low"
    assert "RMAN DUPLICATE 复制的整个数据库（数据文件） 100.0 GiB 的 1.5 倍（150.0 GiB）" in space.reason
    assert "还差 100.0 GiB" in space.reason
    assert space.value == 0.5 and by["目标库为空"].status is Status.OK

    site_dir(_to_oracle("datapump"))
    m = migration(load_site("demo"))
    by = _preflight(m, monkeypatch, _source(10 * GIB, 100 * GIB), Users({"EBOPS_VERIFY"}), 50 * GIB)
    space = by["目标服务器剩余空间"]
    assert space.status is Status.OK and "数据量 10.0 GiB 的 1.5 倍" in space.reason and "整个数据库" not in space.reason
