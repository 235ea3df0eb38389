"""The hospital's servers over SSH (paramiko): commands, and `df` read into mount usage.

Flows reach servers only through this module, so its rules hold everywhere:
- host keys are checked against the site's known_hosts and an unknown or changed key is refused,
  never accepted (a changed key is what a man-in-the-middle looks like);
- commands are built from argv with shlex.join, never by pasting config values into a shell string;
- one connection per host per run (HostPool), each command on its own channel with a deadline.
"""
from __future__ import annotations

import io
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import paramiko

from config.hosts import HostConfig
from config.settings import resolve_secret



class HostError(Exception):
    """A server could not be reached or a command could not be run on it."""


class HostUnreachable(HostError):
    """`dropped` when an open connection was lost (a retry can help), not a host never reached."""

    def __init__(self, message: str = "", *, dropped: bool = False):
        super().__init__(message)
        self.dropped = dropped


class HostKeyRejected(HostError):
    pass


class AuthenticationRefused(HostError):
    pass


class CommandTimeout(HostError):
    pass


@dataclass
class CommandResult:
    host: str
    command: str  # the quoted command line (sent with stdin from /dev/null)
    exit_code: int
    stdout: str
    stderr: str
    started_at: datetime
    finished_at: datetime

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def where(cfg: HostConfig) -> str:
    return f"{cfg.name} [{cfg.address}]:{cfg.port}"


class _RefuseUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy, with a message that names the host and the offered key's fingerprint so the
    engineer can compare it with what the hospital's admin reads on the server."""

    def __init__(self, cfg: HostConfig):
        self.cfg = cfg

    def missing_host_key(self, client, hostname, key):
        raise HostKeyRejected(
            f"host {where(self.cfg)} is not in known_hosts {self.cfg.known_hosts} (it offered {key.get_name()} "
            f"key {key.fingerprint}); it was not accepted — add it after verifying its fingerprint with the hospital "
            f"(ssh-keyscan -p {self.cfg.port} {self.cfg.address}, then ssh-keygen -lf on the server)")


def _load_pkey(cfg: HostConfig) -> paramiko.PKey:
    text = resolve_secret(cfg.key)
    passphrase = resolve_secret(cfg.key_passphrase) if cfg.key_passphrase else None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException as exc:
            raise AuthenticationRefused(f"{where(cfg)}: the private key {cfg.key.describe()} needs a passphrase "
                                        f"(hint: set key_passphrase)") from exc
        except paramiko.SSHException:
            continue
    raise AuthenticationRefused(f"{where(cfg)}: the private key {cfg.key.describe()} is not an OpenSSH/PEM "
                                f"ed25519, ECDSA or RSA key (hint: check the secret's content)")


class HostSession:
    """One SSH connection to one server, opened on first use."""

    def __init__(self, cfg: HostConfig):
        self.cfg = cfg
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ connection
    def connect(self) -> paramiko.Transport:
        with self._lock:
            t = self._client.get_transport() if self._client else None
            if t is not None and t.is_active():
                return t
            self._client = self._open()
            return self._client.get_transport()

    def _open(self) -> paramiko.SSHClient:
        cfg = self.cfg
        if not Path(cfg.known_hosts).is_file():
            raise HostKeyRejected(f"known_hosts file {cfg.known_hosts} for {where(cfg)} does not exist "
                                  f"(hint: create it with the servers' verified host keys)")
        client = paramiko.SSHClient()
        # Only the site's own known_hosts; never the worker's system keys, never auto-add.
        client.load_host_keys(cfg.known_hosts)
        client.set_missing_host_key_policy(_RefuseUnknownHost(cfg))
        kwargs: dict = dict(hostname=cfg.address, port=cfg.port, username=cfg.user, timeout=cfg.connect_timeout_s,
                            banner_timeout=cfg.connect_timeout_s, auth_timeout=cfg.connect_timeout_s,
                            allow_agent=False, look_for_keys=False)
        if cfg.key_file:
            if not Path(cfg.key_file).is_file():
                raise AuthenticationRefused(f"{where(cfg)}: key_file {cfg.key_file} does not exist "
                                            f"(hint: the key stays on the worker; check the path)")
            kwargs["key_filename"] = cfg.key_file
            if cfg.key_passphrase:
                kwargs["passphrase"] = resolve_secret(cfg.key_passphrase)
        else:
            kwargs["pkey"] = _load_pkey(cfg)
        try:
            client.connect(**kwargs)
        except HostKeyRejected:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyRejected(
                f"host key of {where(cfg)} does not match known_hosts {cfg.known_hosts} (offered {exc.key.get_name()} "
                f"{exc.key.fingerprint}, expected {exc.expected_key.fingerprint}) — if the server was reinstalled, "
                f"verify the new key's fingerprint with the hospital and update known_hosts") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthenticationRefused(
                f"{where(cfg)} refused the key of user {cfg.user} ({exc}) — check that the public key is in "
                f"~{cfg.user}/.ssh/authorized_keys on the server") from None
        except (OSError, socket.timeout, paramiko.SSHException) as exc:
            client.close()
            raise HostUnreachable(
                f"cannot reach {where(cfg)}: {exc or type(exc).__name__} — check the address, the port, that sshd "
                f"runs, and the firewall between the worker and the server") from None
        return client

    # ------------------------------------------------------------ commands
    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run argv (each element quoted) and wait for it, at most `timeout` seconds."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        return self._exec(shlex.join(argv), timeout)

    def run_script(self, script: str, args: list[str] = (), timeout: float | None = None) -> CommandResult:
        """A fixed script text run by sh, with the variable parts as quoted positional arguments
        ($1, $2 ...) — never pasted into the script."""
        return self._exec(shlex.join(["sh", "-c", script, "sh", *args]), timeout)

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        timeout = float(timeout if timeout is not None else self.cfg.command_timeout_s)
        transport = self.connect()
        started = datetime.now(timezone.utc)
        # Opening the channel is part of reaching the host, not of the command: a loaded server may
        # take seconds to answer, and that must not eat a short command's budget (CI saw 15 s).
        try:
            chan = transport.open_session(timeout=self.cfg.connect_timeout_s)
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable(
                f"{where(self.cfg)}: could not open a command channel within {self.cfg.connect_timeout_s}s ({exc}) "
                f"— the server is overloaded or the connection was lost (hint: raise connect_timeout_s "
                f"for this host if the server is known to be slow)", dropped=True) from None
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            # No input: the command's stdin is /dev/null (as `ssh -n`), so one that reads it cannot
            # wait forever. Not chan.shutdown_write(): paramiko sends that EOF outside the channel's
            # lock, so when a quick command's CLOSE arrives meanwhile, its reply CLOSE can leave
            # first and the EOF follow a closed channel. The server then drops the whole connection
            # as a protocol error ("Channel not open for sending"), and every command sharing it
            # fails (seen under load: 4 of 6 concurrent commands lost). channel.close() sends EOF and
            # CLOSE together, in order.
            chan.exec_command(f"{command} </dev/null")
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and (chan.eof_received or chan.closed) \
                        and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommandTimeout(f"{where(self.cfg)}: `{command[:200]}` did not finish within {timeout:g}s "
                                         f"(hint: raise command_timeout_s for this host, or look for a hung process)")
                # The channel's fileno wakes on stdout data and on close; stderr has no wakeup, so
                # the wait is capped short.
                select.select([chan], [], [], min(remaining, 0.05))
            code = chan.recv_exit_status()
        finally:
            chan.close()
        return CommandResult(self.cfg.name, command, code, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"), started, datetime.now(timezone.utc))

    def close(self) -> None:
        with self._lock:
            if self._client:
                self._client.close()
                self._client = None

    def __enter__(self) -> "HostSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HostPool:
    """The open sessions of one run: one per host, opened lazily, shared by the run's tasks."""

    def __init__(self) -> None:
        self._sessions: dict[str, HostSession] = {}
        self._lock = threading.Lock()

    def get(self, cfg: HostConfig) -> HostSession:
        with self._lock:
            s = self._sessions.get(cfg.name)
            if s is None or s.cfg != cfg:
                if s is not None:
                    s.close()
                s = self._sessions[cfg.name] = HostSession(cfg)
            return s

    def close_all(self) -> None:
        with self._lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()

    def __enter__(self) -> "HostPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close_all()
