"""Site-file values that try shell injection reach the sandbox's SSH hosts as literal arguments.

The sandbox's hosts run each command with a real `/bin/sh -c` (sandbox/sshd.py), as a hospital's
sshd does. Every value below would create its marker file if it were pasted into the command line;
the checks must run (the command reaches the host and reports the path as missing or unreadable)
and no marker may appear.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from config.hosts import BackupConfig, CertificateFile, LogFile
from config.settings import Thresholds, load_site
from tasks.inspection.certs import certificate_files
from tasks.inspection.hosts import disk_usage, last_backup
from tasks.connect.ssh import HostPool
from tasks.inspection.logs import log_errors
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox


def _attempts(marker_dir: Path, what: str) -> list[tuple[str, Path]]:
    """(value, the file it would create if a shell interpreted it)."""
    m = [marker_dir / f"{what}-{i}" for i in range(4)]
    return [(f"/; touch {m[0]}", m[0]), (f"$(touch {m[1]})", m[1]), (f"`touch {m[2]}`", m[2]),
            (f"x' ; touch {m[3]} ; echo '", m[3])]


def test_injection_attempts_in_config_values_are_passed_quoted(sites_dir, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    logs, mounts, certs, dirs = (_attempts(markers, w) for w in ("log", "mount", "cert", "backup"))
    site = load_site("demo")
    db1 = site.host("db1")
    host = db1.model_copy(update={
        "logs": [LogFile(path=v) for v, _ in logs],
        "mounts": [v for v, _ in mounts],
        "certificates": [CertificateFile(name="注入测试", path=v) for v, _ in certs],
        "backup": BackupConfig(directory=dirs[1][0], log=dirs[0][0], pattern=dirs[2][0]),
    })
    th = Thresholds()
    with HostPool() as pool:
        log_records, _ = log_errors.fn(site.site, host, pool, {})
        disk_records = disk_usage.fn(site.site, host, pool, th)
        cert_records = certificate_files.fn(site.site, host, pool, th)
        backup_records = last_backup.fn(site.site, host, pool, th)
        # the same session still runs an honest command afterwards: nothing was left half-parsed
        assert pool.get(host).run(["printf", "%s", "ok"]).stdout == "ok"
    made = sorted(p.name for p in markers.iterdir())
    assert made == [], f"a config value was run by the host's shell: {made}"
    # each check ran and judged the literal (missing) path, not a shell error about quoting
    assert len(log_records) == len(logs) and len(cert_records) == len(certs)
    for r in log_records + cert_records + disk_records + backup_records:
        assert r.status != Status.OK, r
        assert "syntax error" not in (r.reason + r.raw), r
    reasons = " ".join(r.reason + r.raw for r in log_records + cert_records)
    for value, _ in logs + certs:
        assert value in reasons or value.split()[0] in reasons
