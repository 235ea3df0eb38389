"""The preflight on an Oracle migration: the target's free space against what RMAN DUPLICATE
writes (the whole database) or Data Pump imports (the vendor's schema), and a Data Pump target's
users (the canonical views' owner absent, the checks' accounts present). No Oracle runs here: each
side is a stand-in (tests/unit/test_migration_oracle.CannedOracle) that answers canned rows and
parses every statement it receives with sqlglot's oracle dialect; df and sqlplus over SSH are
stand-ins with canned output too.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlglot

from config.settings import load_site
from tasks.connect.ssh import CommandResult
from tasks.core.results import Status
from tasks.migration import db, preflight
from tasks.migration.journal import PhaseRun
from tests.unit import test_migration_pure as pure
from tests.unit.test_migration_oracle import CannedOracle, _oracle_site, _sides
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
    """The target's dba_users: `there` are the user names that exist (upper-case)."""

    def __init__(self, there: set[str]):
        super().__init__({**VERSION, "dba_objects": [{"n": 0}], "dba_tablespaces": [{"name": "EBILL_DATA"}]})
        self.there = there

    def __call__(self, st):
        if "dba_users" in st.sql:
            sqlglot.parse_one(st.sql, read="oracle")
            assert set(re.findall(r":(\w+)", st.sql)) == set(st.params) == {"username"}, st
            self.seen.append(st)
            return [{"n": int(st.params["username"] in self.there)}]
        return super().__call__(st)


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
    assert "规范视图属主" not in by and "目标库账号" not in by                 # DUPLICATE copies every user

    site_dir(_to_oracle("datapump"))
    m = migration(load_site("demo"))
    by = _preflight(m, monkeypatch, _source(10 * GIB, 100 * GIB), Users({"EBOPS_VERIFY"}), 50 * GIB)
    space = by["目标服务器剩余空间"]
    assert space.status is Status.OK and "数据量 10.0 GiB 的 1.5 倍" in space.reason and "整个数据库" not in space.reason


def test_datapump_target_without_the_views_owner_and_with_both_accounts_passes(site_dir, monkeypatch):
    site_dir(_oracle_site)     # the site's checks on Oracle: views owned by EBOPS, read through EBOPS_RO
    m = migration(load_site("demo"))
    target = Users({"EBOPS_VERIFY", m.site.database.user.upper()})
    by = _preflight(m, monkeypatch, _source(10 * MIB, 100 * MIB), target, 50 * GIB)
    owner, accounts = by["规范视图属主"], by["目标库账号"]
    assert owner.status is Status.OK and "尚无用户 EBOPS" in owner.reason and owner.code == "ok"
    assert accounts.status is Status.OK and "EBOPS_VERIFY" in accounts.reason
    assert m.site.database.user.upper() in accounts.reason
    asked = {st.params["username"] for st in target.seen if "dba_users" in st.sql}
    assert asked == {"EBOPS", "EBOPS_VERIFY", m.site.database.user.upper()}       # bound, upper-case
    assert not any("EBOPS" in st.sql for st in target.seen)                          # never pasted


def test_an_existing_views_owner_on_a_datapump_target_fails(site_dir, monkeypatch):
    site_dir(_oracle_site)
    m = migration(load_site("demo"))
    by = _preflight(m, monkeypatch, _source(10 * MIB, 100 * MIB),
                    Users({"EBOPS", "EBOPS_VERIFY", m.site.database.user.upper()}), 50 * GIB)
    owner = by["规范视图属主"]
    assert owner.status is Status.FAIL and owner.code == "migration_target_not_empty"
    for needed in ("目标库已有用户 EBOPS", "SCHEMAS=EBILL,EBOPS", "ORA-31684", "DROP USER EBOPS CASCADE", "DBA"):
        assert needed in owner.reason, needed
    assert by["目标库账号"].status is Status.OK


def test_a_missing_account_on_a_datapump_target_fails_naming_its_script(site_dir, monkeypatch):
    site_dir(_oracle_site)
    m = migration(load_site("demo"))
    reader = m.site.database.user.upper()
    # the verification account missing: only a stand-in can say so (the preflight logs in as it)
    by = _preflight(m, monkeypatch, _source(10 * MIB, 100 * MIB), Users({reader}), 50 * GIB)
    accounts = by["目标库账号"]
    assert accounts.status is Status.FAIL and accounts.code == "migration_account_missing" and accounts.value == 1
    assert "EBOPS_VERIFY" in accounts.reason and "config/sql/oracle/03_verify_account.sql" in accounts.reason
    assert "02_readonly_account.sql" not in accounts.reason and by["规范视图属主"].status is Status.OK
    by = _preflight(m, monkeypatch, _source(10 * MIB, 100 * MIB), Users({"EBOPS_VERIFY"}), 50 * GIB)
    accounts = by["目标库账号"]
    assert accounts.status is Status.FAIL and accounts.code == "migration_account_missing"
    assert reader in accounts.reason and "config/sql/oracle/02_readonly_account.sql" in accounts.reason
    assert "impdp 随后导入视图对它的授权" in accounts.reason


def test_views_in_the_vendors_schema_leave_only_the_account_check(site_dir, monkeypatch):
    site_dir(lambda d: (_oracle_site(d), d["database"].update(schema="ebill")))
    m = migration(load_site("demo"))
    by = _preflight(m, monkeypatch, _source(10 * MIB, 100 * MIB), Users({"EBOPS_VERIFY"}), 50 * GIB)
    assert "规范视图属主" not in by and by["目标库账号"].status is Status.FAIL    # the site's reader is missing


@pytest.mark.parametrize("across", [False, True], ids=["postgresql", "oracle-to-postgresql"])
def test_a_postgresql_target_has_no_users_checks(site_dir, monkeypatch, across):
    from tests.unit.test_migration_cross_engine import ORACLE, POSTGRES, StandIn, _cross

    if across:
        site_dir(_cross())                                    # Oracle -> PostgreSQL family
    m = migration(load_site("demo"))                          # else the demo: PostgreSQL -> PostgreSQL
    dbs = StandIn({"oracle": ORACLE, "postgresql": POSTGRES})
    monkeypatch.setattr(db, "side_session", dbs.session)
    m.session = lambda name: Host(50 * GIB)                  # type: ignore[method-assign]
    ph = PhaseRun("preflight", "demo")
    preflight.versions_and_size(m, ph)
    titles = {r.title.split("：", 1)[1] for r in ph.results}
    assert "目标库为空" in titles and "目标服务器剩余空间" in titles
    assert not titles & {"规范视图属主", "目标库账号"} and not any("dba_users" in sql for _, sql, _ in dbs.asked)
