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
ORACLE_SQL = [s for s in db.SQL["oracle"].values()] + list(oracle.AFTER_RESTORE_SQL.values()) + [oracle.AUXILIARY_INSTANCE_SQL]


@pytest.mark.parametrize("sql", ORACLE_SQL)
def test_every_oracle_statement_parses(sql):
    text = sql.format(schema='"EBILL"')
    parsed = sqlglot.parse_one(text, read="oracle")
    assert parsed is not None and parsed.key == "select"
    # the bound schema stays a bind, never pasted in
    assert "'EBILL'" not in text


def _to_oracle(method: str | None = None, dsn: bool = True):
    def edit(d):
        d["migration"]["dialect"] = "oracle"
        if method:
            d["migration"]["oracle_method"] = method
        for side, host in (("source", "db1.hosp"), ("target", "db2.hosp")):
            d["migration"][side]["oracle_sid"] = "ebill"
            d["migration"][side]["tools_dir"] = "/u01/app/oracle/product/19c"
            if dsn:
                d["migration"][side]["database"]["dsn"] = f"{host}:1521/ebill"
    return edit


def test_oracle_datapump_commands(site_dir):
    site_dir(_to_oracle())
    m = migration(load_site("demo"))
    assert m.cfg.oracle_method == "datapump"        # the default
    m.facts["plan_id"] = "20261202_120000"
    exp = transfer.dump_argv(m)
    assert exp[:2] == ["sh", "-c"] and "SCHEMAS=EBILL" in exp and "DUMPFILE=ebill_migration_20261202_120000.dump" in exp
    assert "REUSE_DUMPFILES=NO" in exp and not any("password" in a.lower() for a in exp)
    imp = transfer.restore_argv(m)
    assert "TABLE_EXISTS_ACTION=SKIP" in imp and 'USERID="/ as sysdba"' in imp
    with pytest.raises(ValueError, match="host:port/service"):
        oracle.rman_duplicate_script("db1; rm -rf /", "db2:1521/ebill", "ebill")


RMAN_STATEMENTS = ["CONNECT TARGET /@db1.hosp:1521/ebill", "CONNECT AUXILIARY /@db2.hosp:1521/ebill",
                   "ALLOCATE CHANNEL c1 DEVICE TYPE DISK", "ALLOCATE AUXILIARY CHANNEL a1 DEVICE TYPE DISK",
                   "DUPLICATE TARGET DATABASE TO EBILL FROM ACTIVE DATABASE NOFILENAMECHECK", "EXIT"]


def test_rman_duplicate_script_statement_by_statement(site_dir):
    site_dir(_to_oracle("rman_duplicate"))
    cfg = load_site("demo").migration
    argv = oracle.rman_duplicate_argv(cfg)
    assert argv[:2] == ["sh", "-c"] and argv[4:6] == ["/u01/app/oracle/product/19c", "ebill"]   # the target's home, SID
    assert oracle.rman_statements(argv[-1]) == RMAN_STATEMENTS
    assert "RUN {" in argv[-1] and not any("password" in a.lower() or "identified" in a.lower() for a in argv)


def test_rman_duplicate_argv_feeds_the_script_to_rman(tmp_path):
    """The sh wrapper as a host runs it, with a stand-in rman that prints what it was given."""
    import subprocess

    from config.migration import MigrationConfig

    home = tmp_path / "oracle"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "rman").write_text('#!/bin/sh\necho "args=$* sid=$ORACLE_SID"\ncat\necho "Recovery Manager complete."\n')
    (home / "bin" / "rman").chmod(0o755)
    side = lambda host: {"db_host": host, "app_host": "app", "database": {"dsn": f"{host}.hosp:1521/ebill", "user": "v",  # noqa: E731
                         "password": {"env": "X"}}, "tools_dir": str(home), "work_dir": "/w", "data_dir": "/d",
                         "app_stop": ["x"], "app_start": ["x"], "oracle_sid": "ebill"}
    cfg = MigrationConfig.model_validate({"dialect": "oracle", "oracle_method": "rman_duplicate", "schema": "EBILL",
                                          "source": side("db1"), "target": side("db2"),
                                          "cutover_steps": [{"host": "app", "argv": ["x"]}],
                                          "rollback_steps": [{"host": "app", "argv": ["x"]}]})
    out = subprocess.run(oracle.rman_duplicate_argv(cfg), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "args=nocatalog sid=ebill"
    assert oracle.rman_statements("\n".join(lines[1:-1])) == RMAN_STATEMENTS
    assert oracle.judge_duplicate(out.returncode, out.stdout)[0]


def test_rman_duplicate_transcript_judged():
    ok, why = oracle.judge_duplicate(0, "Starting Duplicate Db at 2026-12-02\nFinished Duplicate Db\nRecovery Manager complete.\n")
    assert ok and "Recovery Manager complete." in why
    ok, why = oracle.judge_duplicate(1, "RMAN-00571: ====\nRMAN-03002: failure of Duplicate Db command\n"
                                        "ORA-17627: ORA-12154: TNS:could not resolve\nRecovery Manager complete.\n")
    assert not ok and "RMAN-03002" in why and "ORA-17627" in why and "RMAN-00571" not in why
    ok, why = oracle.judge_duplicate(0, "Starting Duplicate Db\n")        # killed: no end line
    assert not ok and "未运行到结束" in why


def test_oracle_method_is_validated_naming_the_field(site_dir):
    site_dir(_to_oracle("expdp"))
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    assert "migration.oracle_method" in str(exc.value) and "rman_duplicate" in str(exc.value)
    site_dir(lambda d: d["migration"].update(oracle_method="rman_duplicate"))    # on the demo's PostgreSQL
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    assert "oracle_method: rman_duplicate is for dialect oracle" in str(exc.value)
    site_dir(_to_oracle("rman_duplicate", dsn=False))   # libpq DSNs: RMAN cannot connect with them
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    assert "source.database.dsn" in str(exc.value) and "host:port/service" in str(exc.value)


def test_rman_duplicate_plan_has_no_dump_and_lists_the_rman_statements(site_dir):
    site_dir(_to_oracle("rman_duplicate"))
    plan = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    ids = [s.id for s in plan.steps]
    assert "transfer:copy" not in ids and "transfer:restore" not in ids
    rman = next(s for s in plan.steps if s.id == "transfer:rman_duplicate")
    assert rman.target == "db2" and all(st in rman.expect for st in RMAN_STATEMENTS)
    assert next(s for s in plan.steps if s.id == "backup:final").kind == "check"
    site_dir(_to_oracle("datapump"))
    assert "transfer:copy" in [s.id for s in plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工").steps]


class _Session:
    """A database host that answers each command with a canned output (no Oracle here)."""
    def __init__(self, answers):
        self.answers, self.ran = answers, []

    def run(self, argv, timeout=None):
        from datetime import datetime, timezone

        from tasks.connect.ssh import CommandResult

        self.ran.append(argv)
        code, out = next(v for k, v in self.answers.items() if k in argv[2])
        now = datetime.now(timezone.utc)
        return CommandResult("db2", shlex.join(argv), code, out, "", now, now)


def test_rman_duplicate_wired_into_backup_transfer_and_preflight(site_dir):
    from tasks.migration import preflight
    from tasks.migration.journal import PhaseRun

    site_dir(_to_oracle("rman_duplicate"))
    m = migration(load_site("demo"))
    host = _Session({"rman": (0, "connected to target database: EBILL\nFinished Duplicate Db\nRecovery Manager complete.\n"),
                     "sqlplus": (0, "\nSTARTED|19.0.0.0.0\n")})
    m.session = lambda name: host                              # type: ignore[method-assign]
    backup = PhaseRun("backup", "demo")
    transfer.final_backup(m, backup)
    assert not host.ran and backup.results[0].status.value == "OK"        # no dump: RMAN copies in the transfer
    moved = PhaseRun("transfer", "demo")
    transfer.copy_and_restore(m, moved, again=False)
    assert len(host.ran) == 1 and oracle.rman_statements(host.ran[0][-1]) == RMAN_STATEMENTS
    assert moved.results[-1].status.value == "OK" and "Recovery Manager complete." in moved.results[-1].reason
    assert "Finished Duplicate Db" in m.files["migration_rman_duplicate.log"]     # the transcript in the bundle
    assert "Finished Duplicate Db" in moved.commands[0].output and moved.facts["transfer_method"] == "rman_duplicate"
    pre = PhaseRun("preflight", "demo")
    assert preflight.auxiliary_instance(m, pre) == {"status": "STARTED", "version": "19.0.0.0.0", "num": "19.0.0.0.0"}
    failed = _Session({"rman": (1, "RMAN-03002: failure of Duplicate Db command\nRecovery Manager complete.\n")})
    m.session = lambda name: failed                            # type: ignore[method-assign]
    again = PhaseRun("transfer", "demo")
    transfer.copy_and_restore(m, again, again=True)
    assert again.results[-1].code == "migration_transfer_failed" and "RMAN-03002" in again.results[-1].reason


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


def test_free_space_reserve_and_the_refusal_names_mount_measured_and_needed():
    from tasks.migration.preflight import enough_space, space_reason

    mib, gib = 1048576, 1024 ** 3
    assert enough_space(100 * mib, 150 * mib + 2 * gib, 1.5, 2) and not enough_space(100 * mib, 2 * gib, 1.5, 2)
    short = space_reason(11 * mib, 79 * gib, "/", "/srv/db2/u01", 1.5, 100)
    for needed in ("/srv/db2/u01", "文件系统 / 可用 79.0 GiB", "11.0 MiB 的 1.5 倍（16.5 MiB）", "预留 100 GiB",
                   "还差 21.0 GiB", "扩容"):
        assert needed in short, needed
    assert space_reason(11 * mib, 79 * gib, "/", "/d", 1.5, 0).endswith("足够")


def test_the_smoke_test_bill_is_the_targets_optional_setting(site_dir):
    m = load_site("demo").migration
    assert m.target.smoke_test_bill.issue_url.endswith("/test-bill/issue") and m.source.smoke_test_bill is None
    plan = plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工")
    step = next(s for s in plan.steps if s.id == "smoke:test_bill")
    assert "/test-bill/red-flush" in step.text and "写入目标库" in step.expect
    assert "测试票据" in next(s for s in plan.steps if s.id == "approval:cutover").expect   # behind approval #3
    assert "冲红" in IDEMPOTENT["smoke"] and "第三次审批" in IDEMPOTENT["smoke"]
    site_dir(lambda d: d["migration"]["target"].pop("smoke_test_bill"))      # off: the smoke test only reads
    assert not any(s.id == "smoke:test_bill" for s in plan_doc.build_plan(migration(load_site("demo")), dict(FACTS), "张工").steps)
    site_dir(lambda d: d["migration"]["source"].update(smoke_test_bill=d["migration"]["target"]["smoke_test_bill"]))
    with pytest.raises(SiteConfigError) as exc:
        load_site("demo")
    assert "source.smoke_test_bill" in str(exc.value) and "migration.target" in str(exc.value)


def test_the_test_bill_pair_is_judged_as_the_reference_schema_represents_a_red_flush():
    from tasks.migration.smoke_bill import judge

    blue, red = {"bill_code": "44010126", "bill_no": "0000000001"}, {"bill_code": "44010126", "bill_no": "0000000002"}
    row = lambda no, flag, state, amt, orig=(None, None): {"bill_code": "44010126", "bill_no": no, "red_flag": flag,  # noqa: E731
                                                          "bill_state": state, "total_amt": amt, "orig_code": orig[0],
                                                          "orig_no": orig[1]}
    good = {"44010126-0000000001": row("0000000001", "0", "2", "0.01"),
            "44010126-0000000002": row("0000000002", "1", "1", "-0.01", ("44010126", "0000000001"))}
    assert judge(blue, red, good) == []
    assert "目标库中没有红票" in judge(blue, red, {k: v for k, v in good.items() if k.endswith("1")})[0]
    not_flushed = {**good, "44010126-0000000001": row("0000000001", "0", "1", "0.01")}
    assert "应为 0 / 2 已冲红" in judge(blue, red, not_flushed)[0]
    wrong_amt = {**good, "44010126-0000000002": row("0000000002", "1", "1", "-0.02", ("44010126", "0000000001"))}
    assert "相反数" in judge(blue, red, wrong_amt)[0]


def test_the_smoke_bills_refusal_masks_what_the_application_answered():
    """An application answering its test-bill call with an error page that echoes a payer's phone
    number: the run's error (which reaches the record) names the status, never the number."""
    import httpx

    from tasks.migration.journal import PhaseRun
    from tasks.migration.smoke_bill import _post

    page = "500 Internal Error: payer 张三 13812345678 not allowed"
    client = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(500, text=page)))
    ph = PhaseRun("smoke", "demo")
    with pytest.raises(RuntimeError) as exc:
        _post(ph, client, "app2", "http://app2.invalid/test-bill/issue", {"purpose": "迁移冒烟测试"})
    assert "HTTP 500" in str(exc.value) and "13812345678" not in str(exc.value)
    assert "13812345678" not in ph.commands[-1].output
