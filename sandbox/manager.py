"""`ebops sandbox up | down | status`: the demo hospital on 127.0.0.1.

State lives under .sandbox/ at the repository root (or $EBOPS_SANDBOX_DIR): state.json with the PIDs
and ports of what was started, site-vars.yaml for config/sites/demo.yaml, and credentials.env with
the generated passwords and keys (mode 0600; the sandbox's stand-in for a vault: the flows only
ever see them as environment variables). `up` twice is harmless; `down` stops by PID.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from sandbox import app_services, host_trees, postgres, s3, sshd
from sandbox import target as migration_target

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = {"postgres": postgres, "ssh": sshd, "s3": s3, "app": app_services}
CRED_NAMES = ("EBOPS_DEMO_DB_PASSWORD", "EBOPS_DEMO_DB_ADMIN_PASSWORD", "EBOPS_DEMO_S3_ACCESS_KEY",
              "EBOPS_DEMO_S3_SECRET_KEY", "EBOPS_DEMO_DB_VERIFY_PASSWORD", "EBOPS_DEMO_EVIDENCE_SIGNING_KEY")
VAR_KEYS = ("pg_port", "bin_dir", "ssh_port_db1", "ssh_port_app1", "ssh_port_files1", "s3_port", "health_port", "tls_port",
            # the migration target (`up --with-target`): db2, app2 and the application's ports
            "pg_port_db2", "ssh_port_db2", "ssh_port_app2", "app_port_app1", "app_port_app2", "transfer_dir_db2")


def root() -> Path:
    return Path(os.environ.get("EBOPS_SANDBOX_DIR", REPO / ".sandbox")).resolve()


def _state_file() -> Path:
    return root() / "state.json"


def read_state() -> dict:
    f = _state_file()
    return json.loads(f.read_text()) if f.exists() else {}


def _write_state(state: dict) -> None:
    _state_file().write_text(json.dumps(state, indent=2, default=str))


def credentials() -> dict[str, str]:
    """The sandbox's generated secrets, created once per sandbox directory."""
    f = root() / "credentials.env"
    creds = {}
    if f.exists():
        creds = dict(line.split("=", 1) for line in f.read_text().splitlines() if "=" in line)
        if all(n in creds for n in CRED_NAMES):
            return creds
    # a sandbox made by an older version lacks the newer names: add them, keep the others
    fresh = {n: secrets.token_urlsafe(18) for n in CRED_NAMES}
    fresh["EBOPS_DEMO_S3_ACCESS_KEY"] = "ebops" + secrets.token_hex(6)
    fresh["EBOPS_DEMO_EVIDENCE_SIGNING_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()  # Ed25519 seed
    creds = fresh | creds
    f.touch(mode=0o600)
    f.write_text("".join(f"{k}={v}\n" for k, v in creds.items()))
    return creds


def evidence_public_key(creds: dict[str, str]) -> str:
    """The public half of the demo worker's manifest signing key, for the demo site file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(creds["EBOPS_DEMO_EVIDENCE_SIGNING_KEY"]))
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def export_credentials() -> None:
    """Put the sandbox's secrets into this process's environment, where the site file refers to them."""
    os.environ.update(credentials())


def status() -> dict[str, bool]:
    state = read_state()
    return {name: bool(state.get(name)) and mod.is_running(state[name]) for name, mod in COMPONENTS.items()}


def up(days: int = 400, bills_per_day: int = 60, seed: int = 20261126, with_target: bool = False) -> dict:
    """Start every component that is not running; return the state. `with_target`: also the
    migration's new servers db2/app2 and the application on app1 (sandbox/target.py)."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    (base / "logs").mkdir(exist_ok=True)
    creds = credentials()
    state = read_state()
    if not all(status().values()):
        # before the trees: as root, db1 lives outside (sandbox/server_tree.py); a db1 made in place
        # by an older version is retired then, its server stopped: so the status is read after
        postgres.db1_tree(base)
        host_trees.build(base, datetime.now(timezone.utc), layout=False)
    running = status()
    for name, mod in COMPONENTS.items():
        if running.get(name):
            continue
        if name == "postgres":
            state[name] = mod.start(base, creds, days=days, bills_per_day=bills_per_day, seed=seed)
            mod.ensure_verify_account(state[name], creds)
            nightly_backup(state[name], creds)
            host_trees.write_backup_job(base, state[name]["pg_port"], Path(state[name]["bin_dir"]),
                                        creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"], creds["EBOPS_DEMO_DB_VERIFY_PASSWORD"])
        else:
            state[name] = mod.start(base, creds)
        _write_state(state)  # after each component, so `down` finds what did start
    if state.get("postgres"):
        write_layout_files(state["postgres"], creds)
    if with_target and not migration_target.is_running(state.get("target") or {}):
        state["target"] = migration_target.start(base, creds, state["postgres"])
        _write_state(state)
    variables = {"sandbox_root": str(base), "evidence_public_key": evidence_public_key(creds)}
    for comp in state.values():
        if not isinstance(comp, dict):
            continue
        variables.update({k: comp[k] for k in VAR_KEYS if k in comp})
    (base / "site-vars.yaml").write_text(yaml.safe_dump(variables, sort_keys=True))
    return state


def write_layout_files(pg_state: dict, creds: dict[str, str], layout_dir: Path | None = None,
                       dbname: str = postgres.DATABASE) -> int:
    """files1's layout files: the first bills of each month the database holds, older months from a
    deterministic list (sandbox.host_trees), so a layout file names a real bill where one exists."""
    import psycopg

    sql = ("SELECT bill_code, bill_no, issue_time FROM (SELECT bill_code, bill_no, issue_time, row_number() OVER "
           "(PARTITION BY date_trunc('month', issue_time) ORDER BY bill_id) AS rn FROM ebill_canon.ebill_invoice "
           "WHERE bill_kind = 'B') t WHERE rn <= %s ORDER BY issue_time")
    bills: dict[tuple[int, int], list[tuple]] = {}
    with psycopg.connect(postgres.admin_conninfo(pg_state, creds, dbname)) as conn:
        for code, no, issued in conn.execute(sql, (host_trees.LAYOUT_PER_MONTH,)):
            bills.setdefault((issued.year, issued.month), []).append((code, no, issued))
    return host_trees.write_layout_files(layout_dir or root() / "hosts" / "files1" / "data" / "layout",
                                         datetime.now(timezone.utc), bills)


def nightly_backup(pg_state: dict, creds: dict[str, str]) -> Path:
    """What the hospital's cron job does each night: pg_dump -Fc into db1's backup folder, logged.
    The dump holds every payer's personal data: created 0600 (umask 077), in a 0700 folder."""
    backup_dir = root() / "hosts" / "db1" / "backup"
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    name = host_trees.dump_name(started)
    target = backup_dir / name
    env = dict(os.environ, PGPASSWORD=creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    proc = subprocess.run(
        [str(Path(pg_state["bin_dir"]) / "pg_dump"), "-h", "127.0.0.1", "-p", str(pg_state["pg_port"]),
         "-U", "postgres", "-Fc", "-f", str(target), "ebill"],
        env=env, capture_output=True, text=True, timeout=600, umask=0o077)
    status_ = "SUCCESS" if proc.returncode == 0 else "FAILED"
    host_trees.append_backup_log(backup_dir / "backup.log", started, datetime.now(timezone.utc), status_,
                                 name, target.stat().st_size if target.exists() else 0)
    if proc.returncode != 0:
        raise RuntimeError(f"sandbox nightly backup failed: {proc.stderr.strip()[-500:]}")
    return target


def down() -> dict[str, bool]:
    """Stop every component this sandbox started, by PID; returns what was stopped."""
    state = read_state()
    stopped = {}
    if state.get("target"):  # before db1: the application on app1 writes into it
        migration_target.stop(state["target"])
        stopped["target"] = True
    for name in reversed(list(COMPONENTS)):
        if state.get(name):
            COMPONENTS[name].stop(state[name])
            stopped[name] = True
    if state:
        _write_state({})
    return stopped
