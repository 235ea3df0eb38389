"""Site-file validation: the messages an engineer sees for the usual mistakes."""
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
    assert "disk_warn_pct must not exceed disk_fail_pct" in p.message


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
