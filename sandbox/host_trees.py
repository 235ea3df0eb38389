"""The directory trees of the sandbox's servers, under <root>/hosts/<name>/.

- db1: u01/ (the data mount; the PostgreSQL component puts pgdata there), log/ (the DB log, also
  the PostgreSQL component's), backup/ with the nightly backup job's log `backup.log`.
- app1: opt/ebill/ (the e-bill application) and logs/ebill-app.log (a Java-style application log).
- files1: data/layout/<yyyy>/<mm>/ — e-bill layout (版式) files, OFD and PDF, 2022 onwards, named by
  bill code + number: the database's bills where it has them (sandbox.manager), others for older months.

build() is idempotent: it never rewrites a log that exists (the sandbox appends real events to
them: real pg_dump runs, errors injected by tests) and never touches pgdata.
"""
from __future__ import annotations

import io
import os
import random
import zipfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
BACKUP_JOB = "ebill_full"
# Night (counted back from the most recent) whose backup failed: a realistic, recorded anomaly
# that is not the latest run, so "last backup failed" stays OK on a first inspection.
HISTORY_FAILED_NIGHTS = (4,)
HISTORY_NIGHTS = 7
APP_LOG_DAYS = 3
# 票据代码 of the sandbox hospital: province 63 (Qinghai), region 0101, then the year's last two digits.
BILL_CODE_PREFIX = "630101"


def _local(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (hint: datetime.now(timezone.utc))")
    return now.astimezone(TZ)


def _iso(t: datetime) -> str:
    return t.astimezone(TZ).isoformat(timespec="seconds")


# ---------------------------------------------------------------- db1: backup log
def dump_name(started: datetime) -> str:
    return f"ebill_{started.astimezone(TZ):%Y%m%d_%H%M}.dump"


def append_backup_log(log_path: Path, started: datetime, finished: datetime, status: str,
                      file: str, nbytes: int) -> None:
    """Append one run (a START and an END line) in the backup job's format."""
    if status not in ("SUCCESS", "FAILED"):
        raise ValueError(f"backup status must be SUCCESS or FAILED, not {status!r}")
    if finished < started:
        raise ValueError("a backup cannot finish before it starts")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as f:
        f.write(f"{_iso(started)} START job={BACKUP_JOB}\n")
        f.write(f"{_iso(finished)} END job={BACKUP_JOB} status={status} file={file} bytes={int(nbytes)}\n")


def write_backup_history(log_path: Path, now: datetime) -> None:
    """The last HISTORY_NIGHTS nightly runs (02:00) before `now`. Their dump files are not on disk:
    they were rotated away; only the sandbox's real pg_dump runs leave files."""
    now = _local(now)
    last = datetime.combine(now.date(), time(2, 0, 1), TZ)
    if last + timedelta(minutes=10) > now:
        last -= timedelta(days=1)
    rng = random.Random(last.date().toordinal())
    for back in range(HISTORY_NIGHTS - 1, -1, -1):
        started = last - timedelta(days=back)
        failed = back in HISTORY_FAILED_NIGHTS
        finished = started + timedelta(seconds=rng.randint(30, 60) if failed else rng.randint(150, 260))
        nbytes = 0 if failed else 1_180_000 + (HISTORY_NIGHTS - back) * 2_300 + rng.randint(0, 900)
        append_backup_log(log_path, started, finished, "FAILED" if failed else "SUCCESS",
                          dump_name(started), nbytes)


# ---------------------------------------------------------------- app1: application log
_INFO = [
    ("http-nio-8080-exec-{n}", "c.e.ebill.service.InvoiceService", "开票成功 billCode={code} billNo={no} busType=02 elapsed={ms}ms"),
    ("http-nio-8080-exec-{n}", "c.e.ebill.service.InvoiceService", "开票成功 billCode={code} billNo={no} busType=01 elapsed={ms}ms"),
    ("scheduling-1", "c.e.ebill.job.DeliveryJob", "电子票据推送完成 batch={batch} count={cnt}"),
    ("scheduling-1", "c.e.ebill.job.StockJob", "票据库存检查完成 billCode={code} remaining={cnt}"),
    ("http-nio-8080-exec-{n}", "c.e.ebill.web.QueryController", "票据查询 billCode={code} billNo={no} elapsed={ms}ms"),
    ("HikariPool-1 housekeeper", "com.zaxxer.hikari.pool.HikariPool", "HikariPool-1 - Pool stats (total=20, active={n}, idle={idle}, waiting=0)"),
]
_WARN = [
    ("http-nio-8080-exec-{n}", "c.e.ebill.client.SignClient", "签名服务响应较慢 elapsed={slow}ms, 已重试 1 次"),
    ("scheduling-1", "c.e.ebill.job.DeliveryJob", "短信推送延迟 batch={batch} retry=1"),
]


def app_log_line(level: str, message: str, when: datetime, thread: str = "main",
                 logger: str = "c.e.ebill.Application") -> str:
    t = _local(when)
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} {level:<5} [{thread}] {logger} - {message}\n"


def append_app_log(path: Path, level: str, message: str, when: datetime) -> None:
    """Append one line in the application's format (tests use it to inject ERRORs)."""
    if level not in ("DEBUG", "INFO", "WARN", "ERROR"):
        raise ValueError(f"log level must be DEBUG, INFO, WARN or ERROR, not {level!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(app_log_line(level, message, when))


def write_app_log(path: Path, now: datetime) -> None:
    """About one line every 10 minutes over the last APP_LOG_DAYS days; INFO and a few WARN,
    no ERROR, so a first inspection of the sandbox is clean."""
    now = _local(now)
    rng = random.Random(now.date().toordinal())
    t = now - timedelta(days=APP_LOG_DAYS)
    lines = [app_log_line("INFO", "Started EbillApplication in 21.37 seconds (JVM running for 23.02)", t)]
    code = f"{BILL_CODE_PREFIX}{now.year % 100:02d}"
    no = 1000
    while True:
        t += timedelta(seconds=rng.randint(300, 900), milliseconds=rng.randint(0, 999))
        if t >= now:
            break
        level, table = ("WARN", _WARN) if rng.random() < 0.02 else ("INFO", _INFO)
        thread, logger, text = rng.choice(table)
        no += 1
        n = rng.randint(1, 12)
        fields = dict(n=n, idle=20 - n, code=code, no=f"{no:010d}", ms=rng.randint(40, 380),
                      slow=rng.randint(1500, 2600), batch=f"{t:%Y%m%d%H%M}", cnt=rng.randint(5, 400))
        lines.append(app_log_line(level, text.format(**fields), t, thread.format(**fields), logger))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------- files1: layout files
def _ofd_bytes(code: str, no: str, issued: date) -> bytes:
    """A minimal OFD container (OFD is a zip of XML parts, GB/T 33190)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("OFD.xml", f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" '
                              f'Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>{code}{no}</ofd:DocID>'
                              f'<ofd:CreationDate>{issued.isoformat()}</ofd:CreationDate></ofd:DocInfo>'
                              f'<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>')
        z.writestr("Doc_0/Document.xml", '<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"/>')
    return buf.getvalue()


def _pdf_bytes(code: str, no: str) -> bytes:
    return (f"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
            f"% e-bill {code}{no}\ntrailer << /Root 1 0 R >>\n%%EOF\n").encode()


LAYOUT_FIRST_YEAR = 2022
LAYOUT_PER_MONTH = 3


def deterministic_layout_bills(year: int, month: int, now: datetime, per_month: int = LAYOUT_PER_MONTH) -> list[tuple]:
    """(bill code, bill number, issue time) of a month the database holds no bills for: outpatient
    codes of the sandbox hospital (sandbox.ebill_catalog.bill_code), numbers far above the generator's."""
    from sandbox.ebill_catalog import bill_code

    rng = random.Random(year * 100 + month)
    out = []
    for i in range(per_month):
        day = min(1 + i * 9 + rng.randint(0, 5), 28)
        issued = datetime(year, month, day, 9 + rng.randint(0, 8), rng.randint(0, 59), tzinfo=TZ)
        if issued <= now:
            out.append((bill_code("O", year), f"{8_000_000_000 + month * 10000 + i * 137 + 1:010d}", issued))
    return out


def write_layout_files(layout_dir: Path, now: datetime, db_bills: dict[tuple[int, int], list[tuple]] | None = None,
                       per_month: int = LAYOUT_PER_MONTH) -> int:
    """A few layout files per month from January LAYOUT_FIRST_YEAR to `now`'s month, named
    <bill code><bill number>.ofd|.pdf: for a month the database holds bills of (`db_bills`, (year,
    month) -> [(code, number, issue time)]) those bills, else deterministic_layout_bills. mtime =
    issue time. Files that exist are kept (idempotent). Returns the number written."""
    now = _local(now)
    written = 0
    year, month = LAYOUT_FIRST_YEAR, 1
    while (year, month) <= (now.year, now.month):
        bills = (db_bills or {}).get((year, month)) or deterministic_layout_bills(year, month, now, per_month)
        for i, (code, no, issued) in enumerate(bills[:per_month]):
            if issued.tzinfo is None:
                issued = issued.replace(tzinfo=TZ)
            ext = "pdf" if i == per_month - 1 else "ofd"
            path = layout_dir / f"{year:04d}" / f"{month:02d}" / f"{code}{no}.{ext}"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_ofd_bytes(code, no, issued.date()) if ext == "ofd" else _pdf_bytes(code, no))
                os.utime(path, (issued.timestamp(), issued.timestamp()))
                written += 1
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return written


# ---------------------------------------------------------------- all hosts
def build(root: Path, now: datetime, layout: bool = True) -> dict[str, Path]:
    """Lay out the three hosts' trees under <root>/hosts/; returns each host's directory. `layout`
    False leaves the layout files to the caller (sandbox.manager writes them once the database's
    bills are known)."""
    hosts = Path(root).resolve() / "hosts"
    db1, app1, files1 = hosts / "db1", hosts / "app1", hosts / "files1"
    for d in (db1 / "u01", db1 / "log", db1 / "backup", app1 / "opt" / "ebill" / "conf",
              app1 / "opt" / "ebill" / "lib", app1 / "logs", files1 / "data" / "layout"):
        d.mkdir(parents=True, exist_ok=True)
    (db1 / "backup").chmod(0o700)  # the sandbox's own folder of dumps with personal data

    backup_log = db1 / "backup" / "backup.log"
    if not backup_log.exists():
        write_backup_history(backup_log, now)

    conf = app1 / "opt" / "ebill" / "conf" / "application.yml"
    if not conf.exists():
        # No credentials here: the real application reads its DB password from its own vault.
        conf.write_text("server:\n  port: 8080\nebill:\n  sign-server: http://127.0.0.1:9443\n"
                        "  bill-code-prefix: \"" + BILL_CODE_PREFIX + "\"\n", encoding="utf-8")
    jar = app1 / "opt" / "ebill" / "lib" / "ebill-app-3.2.1.jar"
    if not jar.exists():
        jar.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: the jar's stand-in
    app_log = app1 / "logs" / "ebill-app.log"
    if not app_log.exists():
        write_app_log(app_log, now)

    if layout:
        write_layout_files(files1 / "data" / "layout", now)
    return {"db1": db1, "app1": app1, "files1": files1}


# ---------------------------------------------------------------- db1: the backup job itself
BACKUP_SCRIPT = """#!/bin/sh
# The hospital's backup job (sandbox copy): pg_dump -Fc of the e-bill database into this folder,
# one START/END line pair in backup.log. The password comes from ~/.pgpass, as on a real DB host.
# The dump holds every payer's personal data: readable by its owner only (0600).
set -u
umask 077
dir={backup_dir}
log="$dir/backup.log"
now() {{ TZ=Asia/Shanghai date +%Y-%m-%dT%H:%M:%S%:z; }}
name="ebill_$(TZ=Asia/Shanghai date +%Y%m%d_%H%M%S).dump"
echo "$(now) START job={job}" >> "$log"
{pg_dump} -h 127.0.0.1 -p {port} -U postgres -w -Fc -f "$dir/$name" ebill
rc=$?
if [ "$rc" -eq 0 ]; then st=SUCCESS; else st=FAILED; fi
size=$(stat -c %s "$dir/$name" 2>/dev/null || echo 0)
echo "$(now) END job={job} status=$st file=$name bytes=$size" >> "$log"
exit "$rc"
"""


def write_backup_job(root: Path, pg_port: int, bin_dir: Path, admin_password: str, verify_password: str) -> Path:
    """db1's backup script and the ~/.pgpass it and the verification's pg_dump/pg_restore read (0600)."""
    import shlex

    db1 = Path(root).resolve() / "hosts" / "db1"
    (db1 / "bin").mkdir(parents=True, exist_ok=True)
    pgpass = db1 / ".pgpass"
    pgpass.touch(mode=0o600)
    pgpass.chmod(0o600)
    pgpass.write_text(f"127.0.0.1:{pg_port}:*:postgres:{admin_password}\n"
                      f"127.0.0.1:{pg_port}:*:ebops_verify:{verify_password}\n")
    script = db1 / "bin" / "ebill_backup.sh"
    script.write_text(BACKUP_SCRIPT.format(backup_dir=shlex.quote(str(db1 / "backup")), job=BACKUP_JOB,
                                           pg_dump=shlex.quote(str(Path(bin_dir) / "pg_dump")), port=int(pg_port)))
    script.chmod(0o755)
    return script
