"""The sandbox's SSH hosts db1, app1 and files1: one asyncssh server process, one port and one
host key per host, key authentication only.

Each host is a directory tree under <root>/hosts/<name>/ (sandbox.host_trees). Exec requests run
for real with /bin/sh in that directory, so the flows reach these "servers" with the same paramiko
code, known_hosts checks and quoting rules as a hospital's real Linux servers.

Run as a separate process (`python -m sandbox.sshd --root R --port db1=P ...`): start() launches it
in its own session so that stop() can end it by PID without touching anything else.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.ports import free_port, pid_alive, port_open, start_server, stop_pid

HOSTS = ("db1", "app1", "files1")
TARGET_HOSTS = ("db2", "app2")   # the migration's new servers (`ebops sandbox up --with-target`)
ALL_HOSTS = HOSTS + TARGET_HOSTS
USER = "ebops"
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- keys and known_hosts
def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: a private key must never be readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _ensure_key(path: Path, comment: str) -> None:
    """Generate an ed25519 key pair in OpenSSH format (paramiko and asyncssh both read it) once;
    kept across restarts so known_hosts and the client key stay valid."""
    import asyncssh

    if path.exists() and path.with_suffix(".pub").exists():
        return
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    _write_private(path, key.export_private_key("openssh"))
    path.with_suffix(".pub").write_bytes(key.export_public_key("openssh"))


def ensure_keys(root: Path, hosts: tuple[str, ...] = HOSTS) -> Path:
    ssh_dir = root / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    for name in hosts:
        _ensure_key(ssh_dir / f"host_{name}_ed25519", f"{name}.sandbox")
    _ensure_key(ssh_dir / "id_ed25519", f"{USER}@worker")
    return ssh_dir


def write_known_hosts(ssh_dir: Path, ports: dict[str, int], name: str = "known_hosts") -> Path:
    lines = []
    for host in ports:
        algo, blob = (ssh_dir / f"host_{host}_ed25519.pub").read_text().split()[:2]
        lines.append(f"[127.0.0.1]:{ports[host]} {algo} {blob}\n")
    path = ssh_dir / name
    path.write_text("".join(lines))
    return path


# ---------------------------------------------------------------- the component contract
def _state_file(root: Path, hosts: tuple[str, ...] = HOSTS) -> Path:
    return root / "ssh" / ("sshd-state.json" if hosts == HOSTS else f"sshd-{'-'.join(hosts)}-state.json")


def is_running(state: dict, hosts: tuple[str, ...] | None = None) -> bool:
    hosts = hosts or tuple(state.get("hosts") or HOSTS)
    return bool(state) and pid_alive(state.get("pid")) and all(
        port_open(state.get(f"ssh_port_{n}", 0)) for n in hosts
    )


def start(root: Path, creds: dict[str, str] | None = None, hosts: tuple[str, ...] = HOSTS,
          known_hosts_name: str = "known_hosts") -> dict:
    """Start the SSH hosts (default db1, app1, files1; the migration target's db2, app2 in a
    process of their own) or return the state of the ones already running."""
    root = Path(root).resolve()
    sf = _state_file(root, hosts)
    if sf.exists():
        state = json.loads(sf.read_text())
        if is_running(state, hosts):
            return state
    ssh_dir = ensure_keys(root, hosts)
    for name in hosts:
        (root / "hosts" / name).mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in hosts}
    known_hosts = write_known_hosts(ssh_dir, ports, known_hosts_name)
    log_path = root / "logs" / ("sshd.log" if hosts == HOSTS else f"sshd-{'-'.join(hosts)}.log")
    cmd = [sys.executable, "-m", "sandbox.sshd", "--root", str(root)]
    for name, port in ports.items():
        cmd += ["--port", f"{name}={port}"]
    pid = start_server(cmd, REPO_ROOT, log_path, list(ports.values()), 90, "sandbox sshd")
    state = {
        "pid": pid,
        "hosts": list(hosts),
        **{f"ssh_port_{n}": p for n, p in ports.items()},
        "known_hosts": str(known_hosts),
        "client_key": str(ssh_dir / "id_ed25519"),
        "log": str(log_path),
    }
    sf.write_text(json.dumps(state, indent=2))
    return state


def stop(state: dict) -> None:
    if state and state.get("pid"):
        stop_pid(state["pid"])


# ---------------------------------------------------------------- the server process
def _serve(root: Path, ports: dict[str, int]) -> None:
    import asyncssh

    authorized = asyncssh.read_public_key(root / "ssh" / "id_ed25519.pub")

    class _Server(asyncssh.SSHServer):
        # Public keys only: a password prompt would only invite someone to type one.
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return False

        def kbdint_auth_supported(self) -> bool:
            return False

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key) -> bool:
            return username == USER and key.public_data == authorized.public_data

    def handler_for(name: str):
        home = root / "hosts" / name

        async def handle(process) -> None:
            if process.command is None:
                process.stderr.write(b"this sandbox host runs commands only (no interactive shell)\n")
                process.exit(1)
                return
            # PWD: the shell shows the host's path, not a symlink's target (db1's tree, as root)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PWD": str(home), "USER": USER,
                   "LOGNAME": USER, "LANG": "C.UTF-8", "EBOPS_SANDBOX_HOST": name}
            local = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", process.command, cwd=home, env=env, start_new_session=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

            async def feed() -> None:
                # The channel's input reaches the command's stdin, as with OpenSSH (the migration
                # streams a dump into `cat > file` on the target); EOF from the client closes it.
                try:
                    while data := await process.stdin.read(65536):
                        local.stdin.write(data)
                        await local.stdin.drain()
                except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
                    pass
                finally:
                    try:
                        local.stdin.close()
                    except (BrokenPipeError, ConnectionResetError, RuntimeError):
                        pass

            feeder = asyncio.ensure_future(feed())

            async def pump(reader, writer) -> None:
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()

            async def finish() -> int:
                # All output is sent before the exit status, as OpenSSH's sshd does.
                await asyncio.gather(pump(local.stdout, process.stdout), pump(local.stderr, process.stderr))
                return await local.wait()

            done = asyncio.ensure_future(finish())
            gone = asyncio.ensure_future(process.channel.wait_closed())
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
            feeder.cancel()
            if done.done() and not done.exception():
                process.exit(done.result())
                return
            # The client hung up (a timeout) or the channel failed: end the command's whole
            # process group, as sshd does on hang-up, so a stuck command does not outlive it.
            done.cancel()
            try:
                os.killpg(local.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await local.wait()

        return handle

    async def main() -> None:
        servers = []
        for name, port in ports.items():
            servers.append(await asyncssh.listen(
                "127.0.0.1", port, server_factory=_Server, encoding=None,
                server_host_keys=[str(root / "ssh" / f"host_{name}_ed25519")],
                process_factory=handler_for(name), sftp_factory=True, allow_scp=True))
            print(f"sandbox sshd: {name} listening on 127.0.0.1:{port}", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        for s in servers:
            s.close()
        print("sandbox sshd: stopped", flush=True)

    asyncio.run(main())


def _parse_args(argv: list[str] | None = None) -> tuple[Path, dict[str, int]]:
    ap = argparse.ArgumentParser(description="sandbox SSH hosts (db1, app1, files1; db2, app2)")
    ap.add_argument("--root", required=True, type=Path, help="the sandbox root (.sandbox)")
    ap.add_argument("--port", action="append", default=[], metavar="HOST=PORT")
    args = ap.parse_args(argv)
    ports: dict[str, int] = {}
    for item in args.port:
        name, _, port = item.partition("=")
        if name not in ALL_HOSTS or not port.isdigit():
            ap.error(f"--port {item!r}: expected one of {', '.join(ALL_HOSTS)} followed by =PORT")
        ports[name] = int(port)
    if not ports:
        ap.error("--port HOST=PORT is needed at least once")
    return args.root.resolve(), ports


if __name__ == "__main__":
    _serve(*_parse_args())
