"""Site-file validation: the messages an engineer sees for the usual mistakes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.problems import SiteConfigError
from config.settings import EnvSecret, SecretMissing, check_sites, load_site, resolve_secret

MINIMAL = {
    "site": "t1",
    "name": "测试医院",
    "database": {"dialect": "postgresql", "dsn": "host=127.0.0.1 dbname=ebill", "user": "ro",
                 "password": {"env": "T1_DB_PASSWORD"}},
    "hosts": [{"name": "db1", "role": "database", "address": "127.0.0.1", "user": "ebops",
               "key_file": "/k", "known_hosts": "/kh"}],
    "evidence": {"endpoint": "127.0.0.1:9000", "bucket": "ebill-evidence",
                 "access_key": {"env": "A"}, "secret_key": {"prefect_secret": "s3-secret"}},
}


def write(tmp_path: Path, data: dict, name: str = "t1") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def problems(tmp_path, data):
    with pytest.raises(SiteConfigError) as exc:
        load_site(write(tmp_path, data))
    return exc.value.problems


def test_minimal_site_loads_with_default_thresholds(tmp_path):
    site = load_site(write(tmp_path, MINIMAL))
    assert site.thresholds.disk_fail_pct == 90 and site.thresholds.cert_warn_days == 60
    assert site.timezone == "Asia/Shanghai"
    assert site.host("db1").port == 22


def test_missing_field_names_the_field(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    del data["database"]["user"]
    [p] = problems(tmp_path, data)
    assert p.field == "database.user" and p.message == "required field is missing"
    assert "add `user:`" in p.hint


def test_bad_type_names_the_field_and_value(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["hosts"][0]["port"] = "twenty-two"
    [p] = problems(tmp_path, data)
    assert p.field == "hosts[0:db1].port"
    assert "twenty-two" in p.hint


def test_literal_password_is_refused_with_hint(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["database"]["password"] = "Secret123"
    [p] = problems(tmp_path, data)
    assert p.field == "database.password"
    assert p.message == "a secret must not be written in the file"
    assert "{env: NAME}" in p.hint and "Secret123" not in str(p)


def test_password_in_dsn_is_refused(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["database"]["dsn"] = "host=x dbname=ebill password=abc"
    [p] = problems(tmp_path, data)
    assert p.field == "database.dsn" and "by reference" in p.message


def test_unknown_host_role_lists_allowed_roles(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["hosts"][0]["role"] = "dbserver"
    [p] = problems(tmp_path, data)
    assert p.field == "hosts[0:db1].role"
    assert "'dbserver'" in p.message and "'database'" in p.hint


def test_every_problem_is_listed_at_once(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["hosts"][0]["role"] = "x"
    data["evidence"]["secret_key"] = "plain"
    data["thresholdz"] = {}
    fields = {p.field for p in problems(tmp_path, data)}
    assert fields == {"hosts[0:db1].role", "evidence.secret_key", "thresholdz"}


def test_warn_above_fail_is_refused(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["thresholds"] = {"disk_warn_pct": 95, "disk_fail_pct": 90}
    [p] = problems(tmp_path, data)
    assert "disk_warn_pct must be below disk_fail_pct" in p.message


def test_invalid_yaml_gives_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("site: x\n  name: [unclosed\n")
    with pytest.raises(SiteConfigError) as exc:
        load_site(p)
    assert exc.value.problems[0].field.startswith("line ")


def test_variables_are_substituted_and_unknown_ones_reported(tmp_path):
    (tmp_path / "vars.yaml").write_text("port_db1: 2222\nroot: /srv\n")
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["variables_from"] = "vars.yaml"
    data["hosts"][0]["port"] = "${port_db1}"
    data["hosts"][0]["key_file"] = "${root}/id"
    site = load_site(write(tmp_path, data))
    assert site.host("db1").port == 2222 and site.host("db1").key_file == "/srv/id"
    data["hosts"][0]["known_hosts"] = "${nope}/kh"
    [p] = problems(tmp_path, data)
    assert p.field == "hosts[0].known_hosts" and "${nope}" in p.message


def test_missing_variables_file_hints_at_sandbox_up(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["variables_from"] = "missing.yaml"
    [p] = problems(tmp_path, data)
    assert p.field == "variables_from" and "ebops sandbox up" in p.hint


def test_unknown_site_lists_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))
    write(tmp_path, MINIMAL)
    with pytest.raises(SiteConfigError) as exc:
        load_site("nosuch")
    assert "known sites: t1" in exc.value.problems[0].hint


def test_shipped_example_site_is_valid():
    assert check_sites(["config/sites/example-oracle.yaml"]) == {"config/sites/example-oracle.yaml": []}


def test_secret_resolution_names_the_variable(monkeypatch):
    monkeypatch.delenv("EBOPS_NOPE", raising=False)
    with pytest.raises(SecretMissing, match="EBOPS_NOPE"):
        resolve_secret(EnvSecret(env="EBOPS_NOPE"))
    monkeypatch.setenv("EBOPS_NOPE", "v")
    assert resolve_secret(EnvSecret(env="EBOPS_NOPE")) == "v"


# ---------------------------------------------------------------- nonsense numbers (issue 19.4)
@pytest.mark.parametrize("section, changes, field", [
    ("thresholds", {"disk_warn_pct": -5}, "thresholds.disk_warn_pct"),
    ("thresholds", {"disk_fail_pct": 180}, "thresholds.disk_fail_pct"),
    ("thresholds", {"tablespace_warn_pct": 101}, "thresholds.tablespace_warn_pct"),
    ("thresholds", {"cert_warn_days": -1}, "thresholds.cert_warn_days"),
    ("thresholds", {"cert_fail_days": -15}, "thresholds.cert_fail_days"),
    ("thresholds", {"interface_window_minutes": -60}, "thresholds.interface_window_minutes"),
    ("thresholds", {"interface_window_minutes": 0}, "thresholds.interface_window_minutes"),
    ("thresholds", {"backup_max_age_hours": -26}, "thresholds.backup_max_age_hours"),
    ("thresholds", {"backlog_hours": 0}, "thresholds.backlog_hours"),
    ("thresholds", {"interface_success_fail_pct": 180}, "thresholds.interface_success_fail_pct"),
    ("thresholds", {"delivery_success_warn_pct": -1}, "thresholds.delivery_success_warn_pct"),
    ("thresholds", {"stock_min_days": -7}, "thresholds.stock_min_days"),
    ("thresholds", {"interface_latency_warn_ms": 0}, "thresholds.interface_latency_warn_ms"),
    ("thresholds", {"calendar_months_ahead": 0}, "thresholds.calendar_months_ahead"),
    ("thresholds", {"disk_warn_pct": float("nan")}, "thresholds.disk_warn_pct"),
    ("database", {"statement_timeout_s": 0}, "database.statement_timeout_s"),
    ("database", {"statement_timeout_s": 100000}, "database.statement_timeout_s"),
    ("database", {"quality_statement_timeout_s": -1}, "database.quality_statement_timeout_s"),
])
def test_numbers_out_of_bounds_are_refused_with_field_and_value(tmp_path, section, changes, field):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data.setdefault(section, {}).update(changes)
    found = problems(tmp_path, data)
    assert [p.field for p in found] == [field], found
    assert "got" in found[0].hint and found[0].message.startswith("Input should be")


@pytest.mark.parametrize("changes, says", [
    ({"disk_warn_pct": 90, "disk_fail_pct": 90}, "disk_warn_pct must be below disk_fail_pct"),
    ({"tablespace_warn_pct": 95}, "tablespace_warn_pct must be below tablespace_fail_pct"),
    ({"interface_success_warn_pct": 97}, "interface_success_warn_pct must be above interface_success_fail_pct"),
    ({"cert_warn_days": 15}, "cert_warn_days must be more than cert_fail_days"),
])
def test_warn_must_come_before_fail(tmp_path, changes, says):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["thresholds"] = changes
    [p] = problems(tmp_path, data)
    assert p.field == "thresholds" and says in p.message


def test_backup_verification_numbers_are_bounded():
    from pydantic import ValidationError

    from config.backup_verification import BackupVerificationConfig

    db = {"dsn": "host=h dbname=ebill", "user": "v", "password": {"env": "V"}}
    base = {"host": "db1", "source": db, "schema": "ebill", "scratch": db, "tools_dir": "/usr/bin"}
    assert BackupVerificationConfig.model_validate(base).source.statement_timeout_s == 3600
    for changes in ({"rpo_max_hours": -1}, {"rpo_max_hours": 10**6}, {"rto_max_minutes": 0},
                    {"rto_max_minutes": 10**7}, {"sample_bills": -1}, {"restore_jobs": 0},
                    {"source": {**db, "lock_timeout_s": 0}}, {"scratch": {**db, "statement_timeout_s": -5}}):
        with pytest.raises(ValidationError):
            BackupVerificationConfig.model_validate({**base, **changes})


# ---------------------------------------------------------------- files that cannot be read as YAML
def test_duplicate_key_is_refused_naming_key_and_lines(tmp_path):
    p = write(tmp_path, MINIMAL)
    p.write_text(p.read_text(encoding="utf-8") + "thresholds:\n  disk_warn_pct: 70\n  disk_warn_pct: 85\n",
                 encoding="utf-8")
    with pytest.raises(SiteConfigError) as exc:
        load_site(p)
    [prob] = exc.value.problems
    last = len(p.read_text(encoding="utf-8").splitlines())
    assert prob.field == "disk_warn_pct"
    assert f"at line {last}" in prob.message and f"first at line {last - 1}" in prob.message
    assert "only the last" in prob.hint


def test_duplicate_top_level_key_is_refused(tmp_path):
    p = write(tmp_path, MINIMAL)
    p.write_text(p.read_text(encoding="utf-8") + "site: t2\n", encoding="utf-8")
    with pytest.raises(SiteConfigError) as exc:
        load_site(p)
    assert exc.value.problems[0].field == "site" and "duplicate key" in exc.value.problems[0].message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    data = yaml.safe_dump(MINIMAL, allow_unicode=True)
    text = "x-th: &th {disk_warn_pct: 70, disk_fail_pct: 85}\n"
    p = tmp_path / "t1.yaml"
    p.write_text(data + text + "thresholds:\n  <<: *th\n  disk_warn_pct: 75\n", encoding="utf-8")
    with pytest.raises(SiteConfigError) as exc:  # the anchor's holder is not a site field...
        load_site(p)
    assert [q.field for q in exc.value.problems] == ["x-th"]  # ...but the merge itself is no duplicate


def test_non_utf8_file_is_its_own_problem_with_byte_offset(tmp_path):
    p = write(tmp_path, MINIMAL)
    raw = p.read_bytes()
    at = raw.index("测试医院".encode())
    p.write_bytes(raw[:at] + "测试医院".encode("gbk") + raw[at + len("测试医院".encode()):])
    with pytest.raises(SiteConfigError) as exc:
        load_site(p)
    [prob] = exc.value.problems
    assert f"offset {at}" in prob.message and "not UTF-8" in prob.message and "UTF-8" in prob.hint
    line = raw[:at].count(b"\n") + 1
    assert prob.field == f"line {line}"


def test_one_bad_file_does_not_hide_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))
    write(tmp_path, MINIMAL, "good")
    (tmp_path / "gbk.yaml").write_bytes("site: t1\nname: 测试\n".encode("gbk"))
    report = check_sites()
    assert report[str(tmp_path / "good.yaml")] == []
    assert "not UTF-8" in report[str(tmp_path / "gbk.yaml")][0].message


def test_utf8_bom_is_accepted(tmp_path):
    p = write(tmp_path, MINIMAL)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert load_site(p).name == "测试医院"


def test_config_check_command_names_every_bad_file_without_traceback(tmp_path):
    """The real `ebops config check` over a folder of one good and three bad site files."""
    write(tmp_path, MINIMAL, "good")
    (tmp_path / "gbk.yaml").write_bytes(yaml.safe_dump({**MINIMAL, "site": "gbk"}, allow_unicode=True).encode("gbk"))
    dup = tmp_path / "dup.yaml"
    dup.write_text(yaml.safe_dump({**MINIMAL, "site": "dup"}, allow_unicode=True) + "site: dup2\n", encoding="utf-8")
    write(tmp_path, {**MINIMAL, "site": "bounds", "thresholds": {"disk_warn_pct": -5}}, "bounds")
    env = {**os.environ, "EBOPS_SITES_DIR": str(tmp_path), "COLUMNS": "200"}
    ebops = Path(sys.executable).parent / "ebops"
    res = subprocess.run([str(ebops), "config", "check"], capture_output=True, text=True, env=env, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "Traceback" not in out and "UnicodeDecodeError" not in out, out
    lines = out.splitlines()

    def block(name: str) -> str:
        i = next(i for i, line in enumerate(lines) if line.rstrip().endswith(f"{name}.yaml"))
        return "\n".join(lines[i:i + 2])

    assert block("good").startswith("OK"), out
    assert block("gbk").startswith("BAD") and "not UTF-8" in block("gbk") and "hint:" in block("gbk"), out
    assert block("dup").startswith("BAD") and "site: duplicate key `site`" in block("dup") and "hint:" in block("dup"), out
    assert (block("bounds").startswith("BAD") and "thresholds.disk_warn_pct" in block("bounds")
            and "hint: got -5" in block("bounds")), out


def test_config_check_command_names_a_bad_notify_url_with_field_and_hint(tmp_path):
    """The real `ebops config check`: a robot URL apprise cannot parse is that site's problem
    (field, hint), the key never printed; an unset URL variable is not (read where the worker runs)."""
    write(tmp_path, {**MINIMAL, "site": "bad", "notify": [{"name": "值班群", "url": {"env": "T1_NOTIFY_BAD"}}]}, "bad")
    write(tmp_path, {**MINIMAL, "site": "unset", "notify": [{"name": "值班群", "url": {"env": "T1_NOTIFY_UNSET"}}]}, "unset")
    write(tmp_path, {**MINIMAL, "site": "good", "notify": [{"name": "值班群", "url": {"env": "T1_NOTIFY_GOOD"}}]}, "good")
    env = {**os.environ, "EBOPS_SITES_DIR": str(tmp_path), "COLUMNS": "300",
           "T1_NOTIFY_BAD": "wechat-robot://SECRETKEY123456", "T1_NOTIFY_GOOD": "wecombot://abcdef0123456789"}
    env.pop("T1_NOTIFY_UNSET", None)
    ebops = Path(sys.executable).parent / "ebops"
    res = subprocess.run([str(ebops), "config", "check"], capture_output=True, text=True, env=env, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "Traceback" not in out and "SECRETKEY123456" not in out, out
    lines = out.splitlines()
    at = {name: next(i for i, line in enumerate(lines) if line.rstrip().endswith(f"{name}.yaml")) for name in ("bad", "unset", "good")}
    assert lines[at["good"]].startswith("OK") and lines[at["unset"]].startswith("OK"), out
    assert lines[at["bad"]].startswith("BAD"), out
    problem = lines[at["bad"] + 1]
    assert "notify[0].url" in problem and "值班群" in problem and "hint:" in problem and "env:T1_NOTIFY_BAD" in problem, out


def test_database_records_name_the_database_server_not_the_dialect(tmp_path):
    from tasks.inspection.database import database_host

    assert database_host(load_site(write(tmp_path, MINIMAL))) == "db1"
    no_host = {**MINIMAL, "hosts": []}
    assert database_host(load_site(write(tmp_path, no_host))) == "127.0.0.1"
    oracle = {**no_host, "database": {**MINIMAL["database"], "dialect": "oracle", "dsn": "ora-db.hosp:1521/EBILL"}}
    assert database_host(load_site(write(tmp_path, oracle))) == "ora-db.hosp"


def test_an_impossible_date_in_a_site_file_is_a_problem_not_a_traceback(tmp_path):
    p = tmp_path / "t1.yaml"
    p.write_text(yaml.safe_dump(MINIMAL, allow_unicode=True) + "note_date: 2027-02-30\n", encoding="utf-8")
    with pytest.raises(SiteConfigError) as exc:
        load_site(p)
    assert "not a date" in exc.value.problems[0].message
