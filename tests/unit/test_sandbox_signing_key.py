"""The sandbox's manifest signing key (issue 19.1): generated once per sandbox directory beside the
other secrets, kept when an older sandbox's credentials are completed, its public half what the
demo site file reads (`${evidence_public_key}`) and what the flows' signer expects."""
from __future__ import annotations

from config.settings import EnvSecret
from config.evidence import EvidenceStoreConfig
from sandbox import manager
from tasks.evidence.sign import load_private_key, public_key_b64, signer_for


def test_signing_key_generated_once_and_matches_the_public_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EBOPS_SANDBOX_DIR", str(tmp_path))
    (tmp_path / "credentials.env").write_text("EBOPS_DEMO_DB_PASSWORD=kept\n")  # an older sandbox's file
    creds = manager.credentials()
    assert creds["EBOPS_DEMO_DB_PASSWORD"] == "kept"
    seed = creds["EBOPS_DEMO_EVIDENCE_SIGNING_KEY"]
    assert manager.credentials()["EBOPS_DEMO_EVIDENCE_SIGNING_KEY"] == seed  # stable across calls
    public = manager.evidence_public_key(creds)
    assert public == public_key_b64(load_private_key(seed))
    monkeypatch.setenv("EBOPS_DEMO_EVIDENCE_SIGNING_KEY", seed)
    cfg = EvidenceStoreConfig(endpoint="127.0.0.1:1", bucket="ebill-evidence", access_key=EnvSecret(env="A"),
                              secret_key=EnvSecret(env="B"),
                              signing={"private_key": {"env": "EBOPS_DEMO_EVIDENCE_SIGNING_KEY"}, "public_key": public})
    signer, why = signer_for(cfg)
    assert signer is not None and why is None


def test_cli_prints_the_public_key_line_for_the_site_file(monkeypatch):
    import base64
    import os

    from typer.testing import CliRunner

    from flows.cli_evidence import evidence_app
    from tasks.evidence.sign import fingerprint

    seed = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("EBOPS_TEST_KEY", seed)
    res = CliRunner().invoke(evidence_app, ["public-key", "--env", "EBOPS_TEST_KEY"])
    public = public_key_b64(load_private_key(seed))
    assert res.exit_code == 0 and f'public_key: "{public}"' in res.output and fingerprint(public) in res.output
    assert seed not in res.output
    monkeypatch.setenv("EBOPS_TEST_KEY", "not a key")
    res = CliRunner().invoke(evidence_app, ["public-key", "--env", "EBOPS_TEST_KEY"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "not a key" not in res.output
