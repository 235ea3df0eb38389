"""服务器迁移, the pure parts: the site file's migration section, the plan and its SHA-256, the
downtime estimate, the commands, and every Oracle statement parsed with sqlglot (Oracle is not in
the sandbox: its commands are checked here by shape, its SQL by the parser)."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import sqlglot
import yaml

from config.problems import SiteConfigError
from config.settings import load_site
from tasks.migration import db, oracle, plan_doc, transfer
from tasks.migration.context import Migration
from tasks.migration.journal import ALL_PHASES, IDEMPOTENT, PHASE_ZH

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def site_dir(tmp_path, monkeypatch):
    """The demo site wired to a variables file without the target's variables (a sandbox started
    without --with-target): the defaults must keep it loadable."""
    (tmp_path / "vars.yaml").write_text(yaml.safe_dump({
        "sandbox_root": "/srv/sbx", "pg_port": 5432, "bin_dir": "/usr/lib/postgresql/16/bin", "ssh_port_db1": 22,
        "ssh_port_app1": 22, "ssh_port_files1": 22, "s3_port": 9000, "health_port": 8080, "tls_port": 8443,
        "evidence_public_key": "wpW+U47uVE/pW5Xo2C8ekfTbD9gHhq+YSdLKUVEhWWA="}))
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    demo["variables_from"] = str(tmp_path / "vars.yaml")
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))

    def write(edit=None) -> str:
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        if edit:
            edit(data)
        (tmp_path / "demo.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return "demo"
    write()
    return write


def migration(site) -> Migration:
    return Migration(site, "run-1", "张工", pool=None, journal=None)  # type: ignore[arg-type]


FACTS = {"plan_id": "20261202_120000", "data_bytes": 50 * 1048576, "dump_bytes_estimate": 10 * 1048576,
         "sample_mib": 4, "sample_mib_s": 20.0}


def test_demo_site_loads_without_the_target_variables(site_dir):
    site = load_site("demo")
    m = site.migration
    assert m.target.database.dsn == "host=127.0.0.1 port=9 dbname=ebill"   # the default: nothing listens
    assert site.any_host("db2").port == 9 and [h.name for h in site.hosts] == ["db1", "app1", "files1"]
    assert m.free_space_ratio == 1.5 and len(m.cutover_steps) == 3 and len(m.rollback_steps) == 3


def test_a_step_on_an_unknown_host_is_refused_naming_the_field(site_dir):
    site_dir(lambda d: d["migration"]["cutover_steps"][0].update(host="app9"))
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    assert "migration.cutover_steps[0].host: app9" in str(exc.value)


def test_plan_sha256_is_stable_and_changes_with_the_site_file(site_dir):
    a = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    b = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    assert a.sha256() == b.sha256()
    assert {s.phase for s in a.steps} == set(ALL_PHASES) - {"smoke"} | {"smoke"}
    site_dir(lambda d: d["migration"]["cutover_steps"][2].update(argv=["sh", "opt/ebill/bin/other.sh", "start"]))
    c = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    assert c.sha256() != a.sha256()
    assert "other.sh" in plan_doc.render_plan(c)


def test_the_plan_document_has_the_figures_the_review_needs(site_dir):
    plan = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    text = plan_doc.render_plan(plan)
    for needed in ("20.0 MiB/s", "预计停机时间", "回退路径", "王主任", "approval:plan_review", "approval:downtime",
                   "approval:cutover", "pg_restore", "pg_dump"):
        assert needed in text


def test_downtime_estimate_from_the_sample_throughput():
    est = plan_doc.estimate_downtime({"sample_mib_s": 10, "data_bytes": 100 * 1048576, "dump_bytes_estimate": 20 * 1048576}, 6)
    assert est["dump"] == est["copy"] == 2.0 and est["restore"] == est["verify"] == 10.0
    assert est["quality"] == 0 and est["total"] == 6 + 2 + 2 + 10 + 10 + plan_doc.FIXED_OVERHEAD_S
    with_dq = plan_doc.estimate_downtime({"sample_mib_s": 10, "quality_s": 40}, 6)
    assert with_dq["total"] == 6 + 40 + plan_doc.FIXED_OVERHEAD_S
    rows = plan_doc.estimate_downtime({"sample_mib_s": 10, "data_bytes": 30 * 1048576}, 6, rows_mib_s=3)
    assert rows["rows"] == 10.0 and rows["total"] == 6 + 4 * 3 + 10 + plan_doc.FIXED_OVERHEAD_S   # dump, copy, restore, verify


def test_pg_commands_are_argv_with_quoted_paths(site_dir):
    m = migration(load_site("demo"))
    m.facts["plan_id"] = "20261202_120000"
    dump = transfer.dump_argv(m)
    assert dump[:3] == ["sh", "-c", 'umask 077 && exec "$@"'] and "-Fc" in dump and "-w" in dump
    assert dump[-1] == "ebill" and dump[dump.index("-f") + 1].endswith("ebill_migration_20261202_120000.dump")
    again = transfer.restore_argv(m, again=True)
    assert "--clean" in again and "--if-exists" in again and "--clean" not in transfer.restore_argv(m)
    assert again[again.index("--jobs") + 1] == "2"
    assert shlex.split(transfer.receive_cmd("/x y/z.dump")) == ["sh", "-c", 'umask 077 && cat > "$1"', "sh", "/x y/z.dump"]


def test_every_phase_says_whether_it_may_run_again():
    assert set(PHASE_ZH) == set(ALL_PHASES)
    assert "cutover" not in IDEMPOTENT          # a half-done cut-over needs a person
    assert {"preflight", "verify", "smoke", "transfer"} <= set(IDEMPOTENT)


# ---------------------------------------------------------------- Oracle
ORACLE_SQL = [s for s in db.SQL["oracle"].values()] + oracle.AFTER_RESTORE_SQL


@pytest.mark.parametrize("sql", ORACLE_SQL)
def test_every_oracle_statement_parses(sql):
    text = sql.format(schema='"EBILL"')
    parsed = sqlglot.parse_one(text, read="oracle")
    assert parsed is not None and parsed.key == "select"
    # the bound schema stays a bind, never pasted in
    assert "'EBILL'" not in text


def test_oracle_datapump_and_rman_commands(site_dir):
    def to_oracle(d):
        d["migration"]["dialect"] = "oracle"
        for side in ("source", "target"):
            d["migration"][side]["oracle_sid"] = "ebill"
            d["migration"][side]["tools_dir"] = "/u01/app/oracle/product/19c"
    site_dir(to_oracle)
    m = migration(load_site("demo"))
    m.facts["plan_id"] = "20261202_120000"
    exp = transfer.dump_argv(m)
    assert exp[:2] == ["sh", "-c"] and "SCHEMAS=EBILL" in exp and "DUMPFILE=ebill_migration_20261202_120000.dump" in exp
    assert "REUSE_DUMPFILES=NO" in exp and not any("password" in a.lower() for a in exp)
    imp = transfer.restore_argv(m)
    assert "TABLE_EXISTS_ACTION=SKIP" in imp and 'USERID="/ as sysdba"' in imp
    script = oracle.rman_duplicate_script("db1.hosp:1521/ebill", "db2.hosp:1521/ebill", "ebill")
    assert "DUPLICATE TARGET DATABASE TO EBILL FROM ACTIVE DATABASE NOFILENAMECHECK;" in script
    assert script.count("ALLOCATE") == 2 and "CONNECT AUXILIARY /@db2.hosp:1521/ebill" in script
    with pytest.raises(ValueError, match="host:port/service"):
        oracle.rman_duplicate_script("db1; rm -rf /", "db2:1521/ebill", "ebill")
    assert oracle.rman_argv("/u01/app/oracle/product/19c", "ebill")[-1] == "NOCATALOG"


def test_variable_defaults_in_site_files(tmp_path):
    from config.problems import substitute

    (tmp_path / "v.yaml").write_text("a: 5\n")
    data, problems = substitute({"variables_from": "v.yaml", "x": "${a:-7}", "y": "p=${b:-9}", "z": "${c}"},
                                tmp_path / "s.yaml")
    assert data["x"] == 5 and data["y"] == "p=9" and [p.field for p in problems] == ["z"]


def test_free_space_must_be_the_ratio_times_the_data():
    from tasks.migration.preflight import enough_space

    mib = 1048576
    assert enough_space(100 * mib, 150 * mib, 1.5)
    assert not enough_space(100 * mib, 149 * mib, 1.5)
    assert not enough_space(11 * mib, 16 * mib, 1.5)   # the demo's 11 MiB on a target with 16 MiB free
