"""Backup-restore verification, Oracle 19c side, as pure building blocks: RMAN and Data Pump invocations
(a fixed sh script and its positional arguments, for HostSession.run_script), the parsing of what they print,
the RMAN job history and its verdict, and the scratch schema the dump is restored into.

No password anywhere: RMAN and Data Pump log on by OS authentication (the SSH account is the oracle software
owner) and the scratch schema is a schema-only account. Variable text only travels as checked $1, $2 ...
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.backup.verify.reading import ORACLE_CURRENT_SCN_SQL

DEFAULT_SCRATCH_PREFIX = "EBOPS_VERIFY_"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_$#]{0,127}$")
_FILE = re.compile(r"^[A-Za-z0-9_%][A-Za-z0-9._%-]{0,254}$")  # no '/', ':' (dir:file), ',', quotes
_HOME = re.compile(r"^/[A-Za-z0-9._/+-]*$")
_SID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,29}$")

# ------------------------------------------------------------------ RMAN
_RMAN_COMMANDS = {
    "validate": "RESTORE DATABASE VALIDATE CHECK LOGICAL;",
    # Separate from "validate": it fails (RMAN-06025) on every log the control file still lists
    # whose backup is gone, which must not hide the datafile result.
    "validate_archivelog": "RESTORE ARCHIVELOG ALL VALIDATE;",
    "preview": "RESTORE DATABASE PREVIEW SUMMARY;",
}

# English messages whatever the oracle account's NLS_LANG (a Chinese one prints 恢复管理器完成);
# TWO_TASK would turn "target /" into a network logon; ORACLE_PDB_SID would move it into a PDB.
_ENV = ('ORACLE_HOME="$1"; ORACLE_SID="$2"; NLS_LANG=AMERICAN_AMERICA.AL32UTF8; '
        "NLS_DATE_FORMAT='YYYY-MM-DD HH24:MI:SS'\n"
        "export ORACLE_HOME ORACLE_SID NLS_LANG NLS_DATE_FORMAT\nunset TWO_TASK ORACLE_PDB_SID\n")
# RMAN reads commands from stdin; run_script has none, so the commands arrive as $3.
RMAN_SCRIPT = _ENV + 'printf \'%s\\n\' "$3" | "$ORACLE_HOME/bin/rman" target / nocatalog\n'


def rman_script(kind: str) -> str:
    if kind not in _RMAN_COMMANDS:
        raise ValueError(f"RMAN kind {kind!r} is unknown (hint: one of {', '.join(_RMAN_COMMANDS)})")
    return _RMAN_COMMANDS[kind]


def rman_invocation(kind: str, oracle_home: str, oracle_sid: str) -> tuple[str, list[str]]:
    """(script, args) for HostSession.run_script; rman's exit status is the script's."""
    return RMAN_SCRIPT, [*_home_sid(oracle_home, oracle_sid), rman_script(kind)]


def _home_sid(oracle_home: str, oracle_sid: str) -> list[str]:
    if not isinstance(oracle_home, str) or not _HOME.match(oracle_home) or ".." in oracle_home:
        raise ValueError(f"oracle_home {oracle_home!r} is not a plain absolute path (hint: /u01/app/oracle/product/19c)")
    if not isinstance(oracle_sid, str) or not _SID.match(oracle_sid):
        raise ValueError(f"oracle_sid {oracle_sid!r} is not an instance name (hint: ebill or ebill1)")
    return [oracle_home.rstrip("/") or "/", oracle_sid]


@dataclass(frozen=True)
class RmanOutcome:
    ok: bool
    errors: list[str]           # RMAN-nnnnn / ORA-nnnnn lines, error-stack banners left out
    corrupt_blocks: int | None  # from a VALIDATE listing; None when RMAN printed none
    complete: bool              # "Recovery Manager complete." (RMAN ran to its end, not killed)
    summary: list[str]


_RMAN_ERROR = re.compile(r"\b(?:RMAN|ORA)-\d{5}\b")
_RMAN_BANNER = re.compile(r"^RMAN-0057[01]|^RMAN-00569")
_RMAN_SUMMARY = re.compile(r"^(connected to target database|Starting restore|Finished restore|Media recovery start SCN"
                           r"|Recovery must be done beyond|recovery will be done up to|archived logs generated after"
                           r"|failover to previous backup|validate found one or more corrupt)|validation complete")
_FILE_ROW = re.compile(r"^\s*\d+\s+(?:OK|FAILED)\s+(\d+)\s+\d+\s+\d+\s+\d+\s*$")    # File Status Marked Corrupt ...
_BLOCK_ROW = re.compile(r"^\s*(?:Data|Index|Other)\s+(\d+)\s+\d+\s*$")              # Block Type Blocks Failing ...
_OTHER_ROW = re.compile(r"^\s*(?:Control File|SPFILE|\d+\s+\d+)\s+(?:OK|FAILED)\s+(\d+)\s+\d+")  # ctl/spfile/logs


def parse_rman_output(text: str) -> RmanOutcome:
    errors, summary, corrupt, seen = [], [], 0, False
    marked = failing = 0  # of the datafile row being read; a block may be both marked and failing
    for line in map(str.strip, text.splitlines()):
        if _RMAN_ERROR.search(line) and not _RMAN_BANNER.match(line):
            errors.append(line)
        if _RMAN_SUMMARY.search(line):
            summary.append(line)
        if m := _FILE_ROW.match(line):
            corrupt, seen, marked, failing = corrupt + max(marked, failing), True, int(m[1]), 0
        elif m := _BLOCK_ROW.match(line):
            failing += int(m[1])
        elif m := _OTHER_ROW.match(line):
            corrupt, seen = corrupt + int(m[1]), True
    complete, corrupt_blocks = "Recovery Manager complete." in text, corrupt + max(marked, failing) if seen else None
    return RmanOutcome(complete and not errors and not corrupt_blocks, errors, corrupt_blocks, complete, summary)


# The view reads the control file; the filter keeps it short on a long history. DB FULL / DB INCR
# are whole-database jobs; ARCHIVELOG, CONTROLFILE ... jobs are listed for the record only.
RMAN_JOB_DETAILS_SQL = """
SELECT session_key, input_type, status, start_time, end_time, input_bytes, output_bytes, elapsed_seconds,
       output_device_type
FROM v$rman_backup_job_details WHERE start_time >= :since
ORDER BY start_time DESC, session_key DESC FETCH FIRST 20 ROWS ONLY
"""


@dataclass(frozen=True)
class RmanJob:
    session_key: int
    input_type: str  # DB FULL, DB INCR, ARCHIVELOG, CONTROLFILE ...
    status: str      # COMPLETED, COMPLETED WITH WARNINGS / ERRORS, FAILED, RUNNING [WITH ...]
    start_time: datetime | None
    end_time: datetime | None
    input_bytes: int | None
    output_bytes: int | None
    elapsed_seconds: float | None
    output_device_type: str | None = None

    def label(self) -> str:
        at = f" {self.start_time:%Y-%m-%d %H:%M}" if self.start_time else ""
        return f"{self.input_type} 作业(session_key {self.session_key}{at})"


def rman_jobs_from_rows(rows: list[dict]) -> list[RmanJob]:
    def num(r: dict, key: str, kind: type) -> int | float | None:  # NUMBER: int, float or Decimal
        return None if r.get(key) is None else kind(r[key])
    return [RmanJob(int(r["session_key"]), str(r["input_type"]).strip().upper(), str(r["status"]).strip().upper(),
                    r.get("start_time"), r.get("end_time"), num(r, "input_bytes", int), num(r, "output_bytes", int),
                    num(r, "elapsed_seconds", float), r.get("output_device_type")) for r in rows]


_STATUS_ZH = {"COMPLETED WITH WARNINGS": "完成但有警告 (COMPLETED WITH WARNINGS), 请查看该次 RMAN 输出",
              "COMPLETED WITH ERRORS": "完成但有错误 (COMPLETED WITH ERRORS), 部分文件可能未备份", "FAILED": "失败 (FAILED)"}


def judge_rman_jobs(jobs: list[RmanJob], now: datetime | None = None,
                    stale_after: timedelta = timedelta(hours=24)) -> tuple[bool, str]:
    """The newest whole-database job must be COMPLETED. A running one is passed over (the nightly backup may be
    under way) unless it started longer than stale_after ago: a killed RMAN session leaves its job RUNNING."""
    db = sorted((j for j in jobs if j.input_type in ("DB FULL", "DB INCR")),
                key=lambda j: (j.start_time or datetime.min, j.session_key), reverse=True)
    notes = ""
    while db and db[0].status.startswith("RUNNING"):
        job = db.pop(0)
        if now is not None and job.start_time is not None and now - job.start_time > stale_after:
            return False, (f"最新整库备份 {job.label()} 状态仍为 {job.status}, 已超过 "
                           f"{stale_after.total_seconds() / 3600:g} 小时 (RMAN 会话可能已中断, 请核对备份日志)")
        notes += f"; {job.label()} 正在运行, 以上一次已结束的作业为准"
    if not db:
        return False, "查询时段内没有已结束的整库备份作业 (no finished DB FULL / DB INCR job)" + notes
    ok = db[0].status == "COMPLETED"
    verdict = "已完成 (COMPLETED)" if ok else _STATUS_ZH.get(db[0].status, f"状态为 {db[0].status}, 不是 COMPLETED")
    return ok, f"最新整库备份 {db[0].label()} {verdict}{notes}"


# ------------------------------------------------------------------ Data Pump
# SYSDBA by default: the oracle account is in the dba group, nothing to set up. Oracle advises against SYSDBA
# for Data Pump; "external" is an OPS$ account IDENTIFIED EXTERNALLY with DATAPUMP_EXP/IMP_FULL_DATABASE.
DATAPUMP_LOGINS = {"sysdba": 'USERID="/ as sysdba"', "external": "USERID=/"}

# The parameter file avoids shell and Data Pump quoting both; it is private (umask 077) and removed.
_DP_SCRIPT = _ENV + """shift 2; umask 077; par=$(mktemp) || exit 1
trap 'rm -f "$par"' EXIT; trap 'exit 129' HUP INT TERM
printf '%s\\n' "$@" > "$par" || exit 1; "$ORACLE_HOME/bin/TOOL" parfile="$par"
"""
EXPDP_SCRIPT, IMPDP_SCRIPT = _DP_SCRIPT.replace("TOOL", "expdp"), _DP_SCRIPT.replace("TOOL", "impdp")

# Left out of the scratch copy: the user itself (created beforehand), privileges and grants (the
# copy must not gain the vendor schema's roles, often DBA), and anything that would run on its own
# - DBMS_JOB and scheduler jobs would upload bills to the finance platform a second time.
IMPDP_EXCLUDES = ("USER", "GRANT", "ROLE_GRANT", "DEFAULT_ROLE", "TABLESPACE_QUOTA",
                  "JOB", "PROCOBJ", "DB_LINK", "REFRESH_GROUP")


def _name(field: str, value: str, datapump: bool = False) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or (datapump and "#" in value):
        raise ValueError(f"{field} {value!r} is not a plain Oracle identifier (hint: letters, digits, _ $ #, starting "
                         f"with a letter, at most 128; no '#' for Data Pump, where it starts a comment)")
    return value.upper()  # Oracle folds unquoted names to upper case


def _file(field: str, value: str) -> str:
    if not isinstance(value, str) or not _FILE.match(value):
        raise ValueError(f"{field} {value!r} is not a plain file name in the directory object "
                         f"(hint: letters, digits, . _ - and % as in %U; no '/', ':', ',' or quotes)")
    return value


def _dp_common(oracle_home: str, oracle_sid: str, directory: str, dumpfile: str, logfile: str, login: str) -> list[str]:
    if login not in DATAPUMP_LOGINS:
        raise ValueError(f"login {login!r} is unknown (hint: one of {', '.join(DATAPUMP_LOGINS)})")
    dump, log = _file("dumpfile", dumpfile), _file("logfile", logfile)
    if dump == log:  # Data Pump would write its log over the dump
        raise ValueError(f"logfile {log!r} is the dumpfile (hint: ebill_20260331.log)")
    return [*_home_sid(oracle_home, oracle_sid), DATAPUMP_LOGINS[login],
            f"DIRECTORY={_name('directory', directory, True)}", f"DUMPFILE={dump}", f"LOGFILE={log}"]


def expdp_invocation(oracle_home: str, oracle_sid: str, schema: str, directory: str, dumpfile: str,
                     logfile: str, flashback_scn: int | None, login: str = "sysdba") -> tuple[str, list[str]]:
    """Export one schema, consistent as of flashback_scn (from ORACLE_CURRENT_SCN_SQL) when given.
    No COMPRESSION or PARALLEL: they need the Advanced Compression option / Enterprise Edition."""
    args = _dp_common(oracle_home, oracle_sid, directory, dumpfile, logfile, login)
    args += [f"SCHEMAS={_name('schema', schema, True)}", "REUSE_DUMPFILES=NO"]  # never overwrite a dump
    if flashback_scn is not None:
        if isinstance(flashback_scn, bool) or not isinstance(flashback_scn, int) or flashback_scn <= 0:
            raise ValueError(f"flashback_scn {flashback_scn!r} is not a positive SCN (hint: scn_from_rows)")
        args.append(f"FLASHBACK_SCN={flashback_scn}")
    return EXPDP_SCRIPT, args


def impdp_invocation(oracle_home: str, oracle_sid: str, source_schema: str, scratch_schema: str,
                     directory: str, dumpfile: str, logfile: str, remap_tablespaces: dict[str, str] | None,
                     login: str = "sysdba", prefix: str = DEFAULT_SCRATCH_PREFIX) -> tuple[str, list[str]]:
    """Import source_schema from the dump into the new, empty scratch schema. Every source tablespace must
    be remapped to one the scratch schema has quota on: an unmapped one fails (ORA-01950) instead of filling
    a production tablespace. TABLE_EXISTS_ACTION=SKIP: an existing table is an error (ORA-39151), never replaced."""
    source, scratch = _name("source_schema", source_schema, True), _name("scratch_schema", scratch_schema, True)
    if (why := refuse_scratch(scratch, source, prefix)) is not None:
        raise ValueError(why)
    args = _dp_common(oracle_home, oracle_sid, directory, dumpfile, logfile, login)
    args += [f"SCHEMAS={source}", f"REMAP_SCHEMA={source}:{scratch}", "TABLE_EXISTS_ACTION=SKIP",
             "TRANSFORM=OID:N", *(f"EXCLUDE={x}" for x in IMPDP_EXCLUDES)]  # OID:N: types get new OIDs
    args += [f"REMAP_TABLESPACE={_name('remap_tablespaces', a, True)}:{_name('remap_tablespaces', b, True)}"
             for a, b in sorted((remap_tablespaces or {}).items())]
    return IMPDP_SCRIPT, args


@dataclass(frozen=True)
class DataPumpOutcome:
    ok: bool
    errors: list[str]             # ORA- / UDI- / UDE- lines, compilation warnings left out
    warnings: list[str]           # ORA-39082: created with compilation warnings (data unaffected)
    completed: bool               # the job's end line: "successfully completed" or "completed with N error(s)"
    error_count: int | None       # N of that line (0 when successful); None without an end line
    rows_per_table: dict[str, int]  # table name (schema left out: it differs after a remap) -> rows
    job_line: str | None


_DP_ERROR = re.compile(r"\b(?:ORA|UDI|UDE)-\d{5}\b")
_DP_ROWS = re.compile(r'\.\s\.\s(?:imported|exported)\s+"[^"]+"\."(?P<table>[^"]+)"(?::"[^"]+")?'
                      r"\s+[\d.]+\s*[KMGT]?B\s+(?P<rows>\d+)\s+rows")
_DP_JOB = re.compile(r'Job\s+"[^"]+"\."[^"]+"\s+(?:(?P<ok>successfully completed)|completed with (?P<n>\d+) error)')


def parse_datapump_log(text: str) -> DataPumpOutcome:
    """An expdp or impdp log (also with LOGTIME or METRICS prefixes). Partitions sum per table."""
    errors, warnings, rows, job_line, count = [], [], {}, None, None
    for line in map(str.strip, text.splitlines()):
        if _DP_ERROR.search(line):
            (warnings if "ORA-39082" in line else errors).append(line)
        if m := _DP_ROWS.search(line):
            rows[m["table"]] = rows.get(m["table"], 0) + int(m["rows"])
        if m := _DP_JOB.search(line):
            job_line, count = line, 0 if m["ok"] else int(m["n"])
    # "completed with N error(s)" counts compilation warnings too: ok when they are all there is
    ok = job_line is not None and not errors and (count or 0) <= len(warnings)
    return DataPumpOutcome(ok, errors, warnings, job_line is not None, count, rows, job_line)


# ------------------------------------------------------------------ scratch schema and SCN
SCRATCH_EXISTS_SQL = "SELECT username, created FROM all_users WHERE username = :name"  # name upper-case


def refuse_scratch(scratch: str, production_schema: str, prefix: str = DEFAULT_SCRATCH_PREFIX) -> str | None:
    """Why the scratch schema must not be used (it is dropped CASCADE afterwards), or None."""
    if not prefix or not _NAME.match(prefix):
        return f"临时校验 schema 前缀 {prefix!r} 无效, 拒绝执行 (scratch prefix must be a non-empty identifier)"
    if not isinstance(scratch, str) or not _NAME.match(scratch):
        return f"临时校验 schema 名 {scratch!r} 不是合法的 Oracle 标识符 (scratch name is not a plain identifier)"
    s, p = scratch.upper(), prefix.upper()
    if isinstance(production_schema, str) and s == production_schema.upper():
        return f"临时校验 schema {s} 与生产 schema 同名, 拒绝执行 (scratch schema {s} is the production schema; refusing)"
    if not s.startswith(p) or s == p:
        return (f"临时校验 schema {s} 不以 {p} 开头, 拒绝执行 "
                f"(scratch schema {s} lacks the prefix {p}; only such schemas are ever created or dropped)")
    return None


def _scratch(scratch: str, prefix: str) -> str:
    if (why := refuse_scratch(scratch, "", prefix)) is not None:  # DROP ... CASCADE: check here too
        raise ValueError(why)
    return scratch.upper()


def create_scratch_schema_sql(scratch: str, tablespace: str, prefix: str = DEFAULT_SCRATCH_PREFIX) -> list[str]:
    """A schema-only account (19c): it owns the imported copy, nobody can log on as it."""
    s, t = _scratch(scratch, prefix), _name("tablespace", tablespace)
    return [f'CREATE USER "{s}" NO AUTHENTICATION DEFAULT TABLESPACE "{t}" QUOTA UNLIMITED ON "{t}"']


def drop_scratch_schema_sql(scratch: str, prefix: str = DEFAULT_SCRATCH_PREFIX) -> list[str]:
    return [f'DROP USER "{_scratch(scratch, prefix)}" CASCADE']


def scn_from_rows(rows: list[dict]) -> int:
    """The SCN of ORACLE_CURRENT_SCN_SQL's one row, for expdp FLASHBACK_SCN and AS OF SCN queries."""
    if len(rows) != 1 or rows[0].get("current_scn") is None:
        raise ValueError(f"{ORACLE_CURRENT_SCN_SQL!r} returned {len(rows)} rows, expected one with current_scn")
    return int(rows[0]["current_scn"])
