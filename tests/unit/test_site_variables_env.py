"""The demo site follows the sandbox directory: `variables_from` may name environment variables
(`${env:NAME}`, `${env:NAME:-default}`), and config/sites/demo.yaml names EBOPS_SANDBOX_DIR so."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.problems import SiteConfigError
from config.settings import load_site

# What `ebops sandbox up` writes (sandbox/manager.py): every variable config/sites/demo.yaml uses.
SANDBOX_VARS = {"pg_port": 15432, "bin_dir": "/opt/pg/bin", "ssh_port_db1": 12201, "ssh_port_app1": 12202,
                "ssh_port_files1": 12203, "s3_port": 19000, "health_port": 18080, "tls_port": 18443,
                "evidence_public_key": "A" * 43 + "="}   # base64 of 32 bytes (the sandbox's signing key)


def _sandbox_dir(tmp_path: Path) -> Path:
    sbx = tmp_path / "elsewhere" / "sbx"
    sbx.mkdir(parents=True)
    (sbx / "site-vars.yaml").write_text(yaml.safe_dump({**SANDBOX_VARS, "sandbox_root": str(sbx)}))
    return sbx


def test_ebops_reads_the_demo_site_of_the_sandbox_in_ebops_sandbox_dir(tmp_path):
    sbx = _sandbox_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "EBOPS_SITES_DIR"} | {"EBOPS_SANDBOX_DIR": str(sbx)}
    done = subprocess.run([str(Path(sys.executable).parent / "ebops"), "config", "check", "demo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "site-vars.yaml does not exist" not in done.stdout


def test_demo_site_takes_ports_and_paths_from_ebops_sandbox_dir(tmp_path, monkeypatch):
    sbx = _sandbox_dir(tmp_path)
    monkeypatch.delenv("EBOPS_SITES_DIR", raising=False)
    monkeypatch.setenv("EBOPS_SANDBOX_DIR", str(sbx))
    site = load_site("demo")
    assert site.database.dsn == "host=127.0.0.1 port=15432 dbname=ebill"
    assert site.host("db1").port == 12201 and site.host("db1").key_file == f"{sbx}/ssh/id_ed25519"


def test_without_ebops_sandbox_dir_the_default_is_relative_to_the_site_file(tmp_path, monkeypatch):
    monkeypatch.delenv("EBOPS_T_DIR", raising=False)
    (tmp_path / "sbx").mkdir()
    (tmp_path / "sbx" / "v.yaml").write_text("port: 2201\n")
    site_file = tmp_path / "sites" / "t1.yaml"
    site_file.parent.mkdir()
    site_file.write_text(yaml.safe_dump(_minimal("${env:EBOPS_T_DIR:-../sbx}/v.yaml")))
    assert load_site(site_file).host("db1").port == 2201
    monkeypatch.setenv("EBOPS_T_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SiteConfigError) as exc:
        load_site(site_file)
    [p] = exc.value.problems
    assert p.field == "variables_from" and str(tmp_path / "nowhere" / "v.yaml") in p.message


def test_an_unset_variable_without_default_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("EBOPS_T_UNSET", raising=False)
    site_file = tmp_path / "t1.yaml"
    site_file.write_text(yaml.safe_dump(_minimal("${env:EBOPS_T_UNSET}/v.yaml")))
    with pytest.raises(SiteConfigError) as exc:
        load_site(site_file)
    [p] = exc.value.problems
    assert p.field == "variables_from" and "EBOPS_T_UNSET" in p.message and ":-" in p.hint


def _minimal(variables_from: str) -> dict:
    return {"site": "t1", "name": "测试医院", "variables_from": variables_from,
            "database": {"dialect": "postgresql", "dsn": "host=127.0.0.1 dbname=ebill", "user": "ro",
                         "password": {"env": "T1_DB_PASSWORD"}},
            "hosts": [{"name": "db1", "role": "database", "address": "127.0.0.1", "port": "${port}", "user": "ebops",
                       "key_file": "/k", "known_hosts": "/kh"}],
            "evidence": {"endpoint": "127.0.0.1:9000", "bucket": "ebill-evidence",
                         "access_key": {"env": "A"}, "secret_key": {"prefect_secret": "s3-secret"}}}
