"""tasks.connect.ssh against the sandbox's real SSH hosts (sandbox.sshd on 127.0.0.1)."""
from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncssh
import pytest

from config.hosts import HostConfig
from sandbox import host_trees, sshd
from sandbox.ports import free_port, pid_alive, wait_until
from tasks.connect.df import DfFailed, disk_usage
from tasks.connect.ssh import (
    AuthenticationRefused,
    CommandTimeout,
    HostKeyRejected,
    HostPool,
    HostSession,
    HostUnreachable,
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    host_trees.build(root, datetime.now(timezone.utc))
    state = sshd.start(root, {})
    yield root, state
    sshd.stop(state)
    assert not pid_alive(state["pid"])


def _cfg(sandbox, name: str = "db1", **over) -> HostConfig:
    root, state = sandbox
    fields = dict(name=name, role="database", address="127.0.0.1", port=state[f"ssh_port_{name}"], user="ebops",
                  key_file=state["client_key"], known_hosts=state["known_hosts"], command_timeout_s=20,
                  connect_timeout_s=120)
    fields.update(over)
    return HostConfig(**fields)


@pytest.fixture(scope="module")
def db1(sandbox):
    with HostSession(_cfg(sandbox)) as s:
        yield s


def _other_key_file(path: Path) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    return str(path)


def test_state_and_restart_safety(sandbox):
    root, state = sandbox
    assert set(state) >= {"pid", "ssh_port_db1", "ssh_port_app1", "ssh_port_files1", "known_hosts", "client_key"}
    assert len({state[f"ssh_port_{n}"] for n in sshd.HOSTS}) == 3
    assert os.stat(state["client_key"]).st_mode & 0o777 == 0o600
    assert sshd.is_running(state)
    assert sshd.start(root, {}) == state  # already running: same process, same ports


def test_command_runs_on_its_host(sandbox, db1):
    res = db1.run(["sh", "-c", 'echo "$EBOPS_SANDBOX_HOST"; pwd'])
    assert res.ok and res.exit_code == 0
    assert res.stdout.splitlines() == ["db1", str(sandbox[0].resolve() / "hosts" / "db1")]
    assert res.host == "db1" and res.finished_at >= res.started_at
    with HostSession(_cfg(sandbox, "files1", role="file")) as files1:
        out = files1.run(["ls", "data/layout"]).stdout.split()
    assert "2023" in out and str(datetime.now(timezone.utc).year) in out


def test_argv_is_passed_literally(db1):
    res = db1.run(["printf", "%s", "a b; echo pwned $(id) 'q' \"dq\""])
    assert res.stdout == "a b; echo pwned $(id) 'q' \"dq\""
    assert res.command == "printf %s 'a b; echo pwned $(id) '\"'\"'q'\"'\"' \"dq\"'"


def test_run_script_takes_quoted_args(db1):
    res = db1.run_script('printf "%s|" "$@"', ["x y", "$HOME", "; rm -rf /"])
    assert res.stdout == "x y|$HOME|; rm -rf /|"


def test_non_zero_exit_and_stderr(db1):
    res = db1.run(["ls", "/no/such/dir"])
    assert not res.ok and res.exit_code == 2
    assert "No such file" in res.stderr and res.stdout == ""
    assert db1.run(["sh", "-c", "exit 7"]).exit_code == 7


def test_command_reading_stdin_gets_end_of_input_at_once(db1):
    # Its stdin is /dev/null (the channel's EOF is not sent early, see _exec): `cat` ends, not hangs.
    res = db1.run(["cat"], timeout=10)
    assert (res.exit_code, res.stdout) == (0, "")
    assert res.command == "cat"


def test_large_output_arrives_whole(db1):
    res = db1.run(["seq", "1", "200000"])
    lines = res.stdout.splitlines()
    assert len(lines) == 200000 and lines[-1] == "200000"


def _commands_running(needle: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def test_timeout_raises_and_session_survives(sandbox, db1):
    marker = sandbox[0] / "hosts" / "db1" / "after-timeout"
    script = f"sleep 30; touch {marker}"
    with pytest.raises(CommandTimeout, match=r"db1 \[127.0.0.1\]:\d+.*within 0.5s"):
        db1.run(["sh", "-c", script], timeout=0.5)
    assert db1.run(["echo", "still here"]).stdout == "still here\n"
    # The server ends a command whose client gave up, as sshd does on hang-up.
    wait_until(lambda: not _commands_running(script), 10, "the timed-out command to be ended")
    assert not marker.exists()


def test_disk_usage_matches_statvfs(sandbox, db1):
    root = sandbox[0].resolve()
    paths = [str(root / "hosts" / "db1" / "u01"), str(root / "hosts" / "db1" / "backup")]
    rows = disk_usage(db1, paths)
    assert [r.path for r in rows] == paths
    st = os.statvfs(paths[0])
    assert rows[0].size_kb == st.f_blocks * st.f_frsize // 1024
    assert rows[0].mounted_on.startswith("/") and 0 <= rows[0].use_pct <= 100
    with pytest.raises(DfFailed) as err:
        disk_usage(db1, [paths[0], str(root / "no-such-mount")])
    assert [r.path for r in err.value.partial] == [paths[0]]
    assert list(err.value.failures) == [str(root / "no-such-mount")]


def test_changed_host_key_is_rejected(sandbox, tmp_path):
    cfg = _cfg(sandbox)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{cfg.port} {other[0]} {other[1]}\n")
    with pytest.raises(HostKeyRejected, match=r"host key of db1 \[127.0.0.1\]:\d+ does not match known_hosts"):
        HostSession(cfg.model_copy(update={"known_hosts": str(kh)})).run(["true"])


def test_unknown_host_is_refused_not_added(sandbox, tmp_path):
    cfg = _cfg(sandbox, "app1", role="application")
    kh = tmp_path / "known_hosts"
    # Only the other hosts' lines: app1 itself is unknown.
    lines = [ln for ln in Path(cfg.known_hosts).read_text().splitlines() if f":{cfg.port} " not in ln]
    kh.write_text("\n".join(lines) + "\n")
    before = kh.read_text()
    with pytest.raises(HostKeyRejected, match="not in known_hosts.*verifying its fingerprint"):
        HostSession(cfg.model_copy(update={"known_hosts": str(kh)})).run(["true"])
    assert kh.read_text() == before


def test_wrong_client_key_is_refused(sandbox, tmp_path):
    cfg = _cfg(sandbox).model_copy(update={"key_file": _other_key_file(tmp_path / "id_other")})
    with pytest.raises(AuthenticationRefused, match="db1 .*refused the key of user ebops"):
        HostSession(cfg).run(["true"])


def test_key_given_by_reference(sandbox, monkeypatch):
    monkeypatch.setenv("EBOPS_TEST_SSH_KEY", Path(sandbox[1]["client_key"]).read_text())
    cfg = _cfg(sandbox, key_file=None, key={"env": "EBOPS_TEST_SSH_KEY"})
    with HostSession(cfg) as s:
        assert s.run(["echo", "ok"]).stdout == "ok\n"


def test_closed_port_is_unreachable(sandbox):
    cfg = _cfg(sandbox).model_copy(update={"port": free_port()})
    with pytest.raises(HostUnreachable, match=r"cannot reach db1 \[127.0.0.1\]:\d+"):
        HostSession(cfg).run(["true"])


def test_silent_server_is_unreachable_after_connect_timeout(sandbox):
    # A port that accepts TCP but never says a banner (a hung sshd): the wait is connect_timeout_s,
    # not the command's timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = _cfg(sandbox, port=silent.getsockname()[1], connect_timeout_s=2, command_timeout_s=600)
        began = time.monotonic()
        with pytest.raises(HostUnreachable, match=r"cannot reach db1 \[127.0.0.1\]:\d+"):
            HostSession(cfg).run(["true"])
        assert time.monotonic() - began < 60


def test_pool_shares_one_session_per_host(sandbox):
    with HostPool() as pool:
        cfg = _cfg(sandbox)
        got: list[HostSession] = []
        threads = [threading.Thread(target=lambda: got.append(pool.get(cfg))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(s) for s in got}) == 1
        outs = []
        threads = [threading.Thread(target=lambda i=i: outs.append(got[0].run(["echo", str(i)]).stdout))
                   for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outs) == [f"{i}\n" for i in range(6)]
        assert pool.get(_cfg(sandbox, "app1", role="application")) is not got[0]
