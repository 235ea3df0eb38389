"""A whole sandbox hospital started in a directory under a parent only its owner may enter (as a
checkout under /root or `mktemp -d`), as `make test` and `make demo` start theirs.

As root (as CI runs), PostgreSQL runs as the OS user embedded_postgres, which cannot enter such a
parent: this proves the server still starts and answers, reached through the demo site file, that
the SSH host db1 still shows its log, tablespaces and backups under <sandbox>/hosts/db1, and that no
directory the sandbox did not create changed its mode (the parents of the sandbox directory, the
venv's PostgreSQL install). As another user the server runs as that user and nothing needs to
be opened: the same assertions then prove the sandbox works there and changes no mode either.

Also here: the dumps with every payer's personal data are 0600 (the nightly job's, the hospital's
backup script run over SSH, and the backup verification's dump in a snapshot), and the demo site
follows EBOPS_SANDBOX_DIR.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from config.settings import load_site
from sandbox import manager, postgres, scenarios_backup, server_tree
from tasks.backup.verify import pg_steps
from tasks.connect.database import connect
from tasks.connect.ssh import HostSession

pytestmark = pytest.mark.sandbox


def _modes(paths: list[Path]) -> dict[str, str]:
    return {str(p): stat.filemode(p.lstat().st_mode) for p in paths}


def _watched(root: Path) -> list[Path]:
    """Every directory above the sandbox directory that exists, and the venv's PostgreSQL install
    (bin and lib, every entry), whose modes the wheel's own helpers used to widen."""
    above = [p for p in root.parents if p.exists()]
    install = postgres.bin_dir().parent  # the wheel's, in the venv
    inside = [install / "bin", install / "lib", *(install / "bin").rglob("*"), *(install / "lib").rglob("*")]
    return above + inside


@pytest.fixture(scope="module")
def private_sandbox():
    parent = Path(tempfile.mkdtemp(prefix="ebops-private-"))  # 0700, as mktemp -d makes it
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700
    root = parent / "checkout" / ".sandbox"
    root.mkdir(parents=True)
    root.parent.chmod(0o700)  # a checkout under /root: nobody else may enter
    before = _modes(_watched(root))
    saved_env = dict(os.environ)
    os.environ["EBOPS_SANDBOX_DIR"] = str(root)
    try:
        state = manager.up(days=3, bills_per_day=10)
        manager.export_credentials()
        yield {"root": root, "parent": parent, "state": state, "before": before}
    finally:
        manager.down()
        postgres.discard(root)
        after = _modes(_watched(root))
        shutil.rmtree(parent, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved_env)
    assert after == before  # also once everything is stopped and removed


def test_database_starts_and_answers_through_the_demo_site(private_sandbox):
    state = private_sandbox["state"]["postgres"]
    assert postgres.is_running(state)
    site = load_site("demo")  # follows EBOPS_SANDBOX_DIR: the ports of this sandbox
    assert site.database.dsn.endswith(f"port={state['pg_port']} dbname=ebill")
    with connect(site.database) as db:
        assert db.query("SELECT count(*) AS n FROM ebill_invoice")[0]["n"] > 0
    if os.geteuid() == 0:
        uid = int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{state['pid']}/status").read_text(), re.M).group(1))
        assert pwd.getpwuid(uid).pw_name == postgres.OS_USER
        # the server's files and binaries are where its user can reach them: not under the private parent
        for key in ("pgdata", "tablespaces", "log_file", "bin_dir"):
            assert private_sandbox["parent"] not in Path(state[key]).parents, key


def test_no_mode_changed_above_the_sandbox_or_in_the_venv(private_sandbox):
    assert _modes(_watched(private_sandbox["root"])) == private_sandbox["before"]
    assert stat.S_IMODE(private_sandbox["parent"].stat().st_mode) == 0o700


def test_db1_shows_its_log_tablespaces_and_backups_over_ssh(private_sandbox):
    root, state = private_sandbox["root"], private_sandbox["state"]["postgres"]
    db1 = load_site("demo").host("db1")
    log = str(root / "hosts/db1/log/postgresql.log")
    assert [entry.path for entry in db1.logs] == [log]
    with psycopg.connect(postgres.admin_conninfo(state, manager.credentials()), autocommit=True) as conn:
        [location] = conn.execute("SELECT pg_tablespace_location(oid) FROM pg_tablespace "
                                  "WHERE spcname = 'ts_ebill_' || extract(year FROM now())::int").fetchone()
    with HostSession(db1) as session:
        shown = session.run(["grep", "-c", "database system is ready to accept connections", log])
        assert shown.ok and int(shown.stdout) >= 1, shown.stderr
        assert session.run(["pwd"]).stdout.strip() == str(root / "hosts/db1")
        assert session.run(["df", "-P", "-k", location]).ok  # the tablespace check's df, as db1 sees it
        listing = session.run(["find", str(root / "hosts/db1/backup"), "-maxdepth", "1", "-type", "f",
                               "-name", "ebill_*.dump"])
    assert listing.ok and listing.stdout.strip(), listing.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_nightly_dump_and_the_backup_job_are_private(private_sandbox):
    backup = private_sandbox["root"] / "hosts/db1/backup"
    [nightly] = sorted(backup.glob("ebill_*.dump"))
    assert _mode(nightly) == 0o600 and _mode(backup) == 0o700
    db1 = load_site("demo").host("db1")
    with HostSession(db1) as session:
        res = session.run(db1.backup.command, timeout=db1.backup.command_timeout_s)
    assert res.exit_code == 0, res.stderr
    made = set(backup.glob("ebill_*.dump")) - {nightly}
    assert made and all(_mode(p) == 0o600 for p in made), {p.name: oct(_mode(p)) for p in made}
    # the broken backups the tests plant are dumps with personal data too
    for kind in ("truncated", "missing_table"):
        assert _mode(scenarios_backup.place(kind)) == 0o600, kind


def test_dump_taken_by_the_backup_verification_is_private(private_sandbox):
    site = load_site("demo")
    cfg, db1 = site.backup_verification, site.host("db1")
    dest = f"{db1.backup.directory}/{cfg.scratch.prefix}private_test.dump"
    with pg_steps.connect(cfg.source, autocommit=False) as src, HostSession(db1) as session:
        src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        [snapshot] = src.execute("SELECT pg_export_snapshot()").fetchone()
        res = pg_steps.dump_in_snapshot(session, cfg, snapshot, dest)
        src.rollback()
    assert res.exit_code == 0, res.stderr
    assert _mode(Path(dest)) == 0o600 and Path(dest).stat().st_size > 0


def test_a_server_tree_whose_sandbox_is_gone_is_removed_and_no_other(tmp_path):
    base = server_tree.trees_base()
    gone, young = (Path(tempfile.mkdtemp(prefix="sbx-", dir=base)) for _ in range(2))
    (gone / server_tree.OWNER_FILE).write_text(str(tmp_path / "deleted-sandbox") + "\n")
    (young / server_tree.OWNER_FILE).write_text(str(tmp_path) + "\n")  # its sandbox exists: maybe still being made
    try:
        server_tree._remove_orphans(base)
        assert not gone.exists() and young.exists()
    finally:
        shutil.rmtree(gone, ignore_errors=True)
        shutil.rmtree(young, ignore_errors=True)
    assert stat.S_IMODE(base.stat().st_mode) == 0o711 and base.stat().st_uid == os.geteuid()
