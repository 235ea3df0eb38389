"""Concurrent runs of one duty must not fork the evidence chain (issue 19.3, issue 13's fault list).

Against the sandbox's real S3 (SeaweedFS), in a test bucket beside the evidence bucket (made once
per sandbox: each SeaweedFS bucket takes volumes of its own, and the sandbox has 100), under a site
id of this run's own, so that other test runs writing "demo" bundles cannot interfere:
- the store honours `If-None-Match: *`, also when six writers race for one key;
- six runs at once on six separate workers (threads, each with its own outbox and chain head), twice;
- six runs at once on one worker (six processes sharing its outbox: the flock), twice;
each time every sequence number is taken exactly once and `verify` finds the chain intact.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.evidence import EvidenceStoreConfig
from tasks.evidence.bundle import BundleWriter
from tasks.evidence.sign import load_private_key, public_key_b64
from tasks.evidence.store import MANIFEST, open_store
from tasks.evidence.verify import verify

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
RUNS = 6
SEED = base64.b64encode(secrets.token_bytes(32)).decode()
SITE = "c" + secrets.token_hex(4)  # this run's chains
TEST_BUCKET = "ebops-test-chains"


@pytest.fixture(scope="module")
def cfg(sandbox):
    """A private object-lock bucket in the sandbox's S3, and a signing key for this module."""
    os.environ["EBOPS_TEST_CONC_SIGNING_KEY"] = SEED
    port = sandbox["state"]["s3"]["s3_port"]
    data = {"endpoint": f"127.0.0.1:{port}", "secure": False, "bucket": TEST_BUCKET,
            "access_key": {"env": "EBOPS_DEMO_S3_ACCESS_KEY"}, "secret_key": {"env": "EBOPS_DEMO_S3_SECRET_KEY"},
            "retention": {"mode": "GOVERNANCE", "days": 1},
            "signing": {"private_key": {"env": "EBOPS_TEST_CONC_SIGNING_KEY"},
                        "public_key": public_key_b64(load_private_key(SEED))}}
    c = EvidenceStoreConfig.model_validate(data)
    _ensure_bucket(c)
    return c


def _ensure_bucket(c: EvidenceStoreConfig) -> None:
    client = open_store(c).client
    if not client.bucket_exists(c.bucket):
        client.make_bucket(c.bucket, object_lock=True)


def _sequences(cfg, duty: str) -> list[int]:
    store = open_store(cfg)
    return sorted(json.loads(store.get(o.object_name))["sequence"] for o in store.list(f"{SITE}/{duty}/")
                  if o.object_name.endswith("/" + MANIFEST))


def _write(cfg, outbox: Path, duty: str, run: str, started_at: datetime):
    w = BundleWriter(SITE, duty, "2026-11-01", run, started_at, cfg, outbox)
    w.add_file("report.html", f"<html><body>巡检报告 {run}</body></html>")
    w.add_json("result.json", {"run": run})
    return w.finish("OK", started_at + timedelta(minutes=1), approvals=[])


def test_store_honours_if_none_match_also_in_a_race(cfg):
    store = open_store(cfg)
    assert store.put_if_absent(f"probe/{SITE}/once.json", b"{}") is True
    assert store.put_if_absent(f"probe/{SITE}/once.json", b"{}") is False
    for round_ in range(2):
        key = f"probe/{SITE}/race-{round_}.json"
        gate = threading.Barrier(RUNS)

        def one(i: int) -> bool:
            gate.wait(timeout=60)
            return open_store(cfg).put_if_absent(key, f'{{"writer": {i}}}'.encode())

        with ThreadPoolExecutor(RUNS) as pool:
            assert sum(pool.map(one, range(RUNS))) == 1


def test_six_separate_workers_at_once_twice(cfg, tmp_path):
    duty = "conc_workers"
    for round_ in range(2):
        gate = threading.Barrier(RUNS)

        def one(i: int):
            gate.wait(timeout=60)
            # Same start second for all: the folder names say nothing about the order.
            return _write(cfg, tmp_path / f"worker{i}", duty, f"r{round_}-w{i}", T0 + timedelta(hours=round_))

        with ThreadPoolExecutor(RUNS) as pool:
            stored = list(pool.map(one, range(RUNS)))
        assert all(b.location == "store" and b.findings == () for b in stored), stored
        assert _sequences(cfg, duty) == list(range(1, RUNS * (round_ + 1) + 1))
    report = verify(cfg, site=SITE, duty=duty)
    assert report.ok and report.problems == [], report.problems


_CHILD = """
import json, sys, time
from datetime import datetime
from pathlib import Path
from config.settings import EvidenceStoreConfig
from tasks.evidence.bundle import BundleWriter
cfg = EvidenceStoreConfig.model_validate_json(sys.argv[1])
outbox, duty, run, started, go = Path(sys.argv[2]), sys.argv[3], sys.argv[4], datetime.fromisoformat(sys.argv[5]), Path(sys.argv[6])
(go.parent / (go.name + "-ready-" + run)).touch()
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
w = BundleWriter(sys.argv[7], duty, "2026-11-01", run, started, cfg, outbox)
w.add_file("report.html", "<html><body>" + run + "</body></html>")
b = w.finish("OK", started, approvals=[])
print(json.dumps({"location": b.location, "findings": [f.code for f in b.findings]}))
"""


def test_six_runs_on_one_worker_at_once_twice(cfg, tmp_path):
    """Six processes sharing one outbox and chain head: the flock serialises them on the worker."""
    duty = "conc_processes"
    outbox = tmp_path / "outbox"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for round_ in range(2):
        go = tmp_path / f"go{round_}"
        started = (T0 + timedelta(hours=round_)).isoformat()
        procs = [subprocess.Popen([sys.executable, "-c", _CHILD, cfg.model_dump_json(), str(outbox), duty,
                                   f"r{round_}-p{i}", started, str(go), SITE], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(RUNS)]
        # Open the gate once all six have imported and wait at it (polled with a deadline).
        deadline = time.monotonic() + 240
        while len(list(tmp_path.glob(f"go{round_}-ready-*"))) < RUNS and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a run ended before the gate opened"
            time.sleep(0.05)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert results == [{"location": "store", "findings": []}] * RUNS, results
        assert _sequences(cfg, duty) == list(range(1, RUNS * (round_ + 1) + 1))
    report = verify(cfg, site=SITE, duty=duty, outbox=outbox)
    assert report.ok and report.problems == [], report.problems


def test_six_runs_on_one_worker_while_the_store_is_down(cfg, tmp_path, unused_port):
    """Without the store no claim can be made: the worker's lock alone keeps the outbox chain
    unforked (threads here: flock excludes two opens of the lock file in one process as well)."""
    down = cfg.model_copy(update={"endpoint": f"127.0.0.1:{unused_port}"})
    outbox = tmp_path / "outbox"
    gate = threading.Barrier(RUNS)

    def one(i: int):
        gate.wait(timeout=60)
        return _write(down, outbox, "conc_offline", f"off-{i}", T0)

    with ThreadPoolExecutor(RUNS) as pool:
        stored = list(pool.map(one, range(RUNS)))
    assert all(b.location == "outbox" for b in stored)
    seqs = sorted(json.loads(m.read_bytes())["sequence"] for m in outbox.glob(f"{SITE}/conc_offline/*/*/{MANIFEST}"))
    assert seqs == list(range(1, RUNS + 1))


def test_fork_while_one_worker_was_offline_is_uploaded_and_reported(cfg, tmp_path, unused_port):
    """Worker A numbers a bundle offline; worker B, online, takes that number meanwhile. A's bundle
    still goes up byte-identical (evidence is never dropped), the fork is a finding of A's next run
    and verify names the duplicate sequence; A's next bundle follows its own chain head."""
    duty, a, b = "conc_fork", tmp_path / "worker-a", tmp_path / "worker-b"
    down = cfg.model_copy(update={"endpoint": f"127.0.0.1:{unused_port}"})
    first = _write(cfg, a, duty, "a1", T0)
    offline = _write(down, a, duty, "a2", T0 + timedelta(hours=1))
    assert offline.location == "outbox"
    waiting = {p.name: p.read_bytes() for p in (a / offline.prefix).rglob("*") if p.is_file()}
    other = _write(cfg, b, duty, "b2", T0 + timedelta(hours=2))
    assert other.findings == () and json.loads(open_store(cfg).get(other.prefix + MANIFEST))["sequence"] == 2
    back = _write(cfg, a, duty, "a3", T0 + timedelta(hours=3))
    assert [f.code for f in back.findings] == ["sequence_taken"]
    store = open_store(cfg)
    assert {n: store.get(offline.prefix + n) for n in waiting} == waiting
    m3 = json.loads(store.get(back.prefix + MANIFEST))
    assert (m3["sequence"], m3["prev_bundle"]) == (3, offline.prefix)
    report = verify(cfg, site=SITE, duty=duty)
    assert {p.code for p in report.problems} == {"sequence_duplicate"}, report.problems
    assert first.findings == ()


def test_a_lock_held_too_long_never_leaves_the_bundle_unfinished(cfg, tmp_path, monkeypatch):
    from tasks.evidence import chain as evidence_chain

    outbox = tmp_path / "outbox"
    monkeypatch.setattr(evidence_chain, "LOCK_TIMEOUT_S", 0.5)
    with evidence_chain.chain_lock(outbox, SITE, "conc_stuck") as held:  # a run that hangs holding it
        assert held
        stored = _write(cfg, outbox, "conc_stuck", "late", T0)
    assert stored.location == "store" and [(f.code, f.status) for f in stored.findings] == [("lock_timeout", "WARN")]
    assert _sequences(cfg, "conc_stuck") == [1]
