"""Oracle migration commands: Data Pump (expdp on the source, the dump copied, impdp on the target
into the same schema) or RMAN DUPLICATE ... FROM ACTIVE DATABASE (the target instance started
NOMOUNT by the DBA), chosen by `migration.oracle_method` (datapump | rman_duplicate). Each can be
replaced in the site file (migration.dump_command / restore_command). The SQL the migration runs against Oracle (tasks/migration/db.py, freeze's newest
bill) is parsed with sqlglot's oracle dialect in tests/unit/test_migration_pure.py; RMAN's own
language is not SQL and is checked by shape there. Not run against a live Oracle in this repository
(no Oracle in the sandbox): the transcripts are recorded as any command's output.
"""
from __future__ import annotations

import re

from config.migration import EZCONNECT, MigrationConfig
from config.settings import Site
from tasks.backup.verify.oracle_steps import (DATAPUMP_LOGINS, EXPDP_SCRIPT, IMPDP_SCRIPT, _ENV, _home_sid, _name,
                                              parse_rman_output)


def _dumpfile(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def canonical_schema(site: Site) -> str | None:
    """The owner of the canonical views on an Oracle site (01_canonical_views.sql; the site's
    database.schema, default EBOPS), None for a PostgreSQL site (its dump carries ebill_canon)."""
    return (site.database.schema_name or "EBOPS").upper() if site.database.dialect == "oracle" else None


def _schemas(cfg: MigrationConfig, canon: str | None) -> str:
    """SCHEMAS= of a Data Pump migration: the vendor's schema, and the canonical views' owner with
    it — the views (and the vendor's grants to their owner) belong on the new server as they do in a
    PostgreSQL dump; without their owner impdp cannot import those grants (ORA-01917), and the
    verify phase's data-quality rules read the views on the target."""
    owner = imported_owner(cfg, canon)
    return "SCHEMAS=" + ",".join([_name("schema", cfg.schema_name, True), *([owner] if owner else [])])


def imported_owner(cfg: MigrationConfig, canon: str | None) -> str | None:
    """The canonical views' owner when Data Pump moves it beside the vendor's schema (the user impdp
    creates on the target); None when the views live in the vendor's own schema or off Oracle."""
    if canon and _name("database.schema", canon, True) != _name("schema", cfg.schema_name, True):
        return _name("database.schema", canon, True)
    return None


def expdp_argv(cfg: MigrationConfig, out: str, canon: str | None = None) -> list[str]:
    """Export the vendor's schema (and `canon`, the canonical views' owner) from the frozen source
    (the application is stopped: consistent without FLASHBACK_SCN); the dump lands in the directory
    object's path (source.work_dir)."""
    dump = _dumpfile(out)
    args = [*_home_sid(cfg.source.tools_dir, cfg.source.oracle_sid or ""), DATAPUMP_LOGINS["sysdba"],
            f"DIRECTORY={_name('oracle_directory', cfg.oracle_directory, True)}", f"DUMPFILE={dump}",
            f"LOGFILE={dump.rsplit('.', 1)[0]}_exp.log", _schemas(cfg, canon), "REUSE_DUMPFILES=NO"]
    return ["sh", "-c", EXPDP_SCRIPT, "sh", *args]


def impdp_argv(cfg: MigrationConfig, dump_path: str, canon: str | None = None) -> list[str]:
    """Import the same schemas on the empty target; an existing table is an error, never replaced."""
    dump = _dumpfile(dump_path)
    args = [*_home_sid(cfg.target.tools_dir, cfg.target.oracle_sid or ""), DATAPUMP_LOGINS["sysdba"],
            f"DIRECTORY={_name('oracle_directory', cfg.oracle_directory, True)}", f"DUMPFILE={dump}",
            f"LOGFILE={dump.rsplit('.', 1)[0]}_imp.log", _schemas(cfg, canon), "TABLE_EXISTS_ACTION=SKIP"]
    return ["sh", "-c", IMPDP_SCRIPT, "sh", *args]


def rman_duplicate_script(target_service: str, auxiliary_service: str, db_name: str) -> str:
    """RMAN DUPLICATE FROM ACTIVE DATABASE: the whole database copied over Oracle Net to the new
    server's instance (started NOMOUNT with the same DB_NAME's pfile by the DBA). Passwords are
    not in the script: RMAN reads them from the wallet (connect with /@alias)."""
    for what, v in (("target_service", target_service), ("auxiliary_service", auxiliary_service)):
        if not EZCONNECT.match(v):
            raise ValueError(f"{what} {v!r} is not host:port/service (hint: db1.hospital:1521/ebill)")
    name = _name("db_name", db_name)
    return (f"CONNECT TARGET /@{target_service}\n"
            f"CONNECT AUXILIARY /@{auxiliary_service}\n"
            "RUN {\n"
            "  ALLOCATE CHANNEL c1 DEVICE TYPE DISK;\n"
            "  ALLOCATE AUXILIARY CHANNEL a1 DEVICE TYPE DISK;\n"
            f"  DUPLICATE TARGET DATABASE TO {name} FROM ACTIVE DATABASE NOFILENAMECHECK;\n"
            "}\nEXIT\n")


# rman reads its commands from stdin; a command has none over SSH, so the script arrives as $3
# (the backup verification's way, tasks/backup/verify/oracle_steps.py). No `target /`: the script
# connects to both databases itself. rman's exit status is the command's.
RMAN_DUPLICATE_SCRIPT = _ENV + 'printf \'%s\\n\' "$3" | "$ORACLE_HOME/bin/rman" nocatalog\n'


def rman_duplicate_argv(cfg: MigrationConfig) -> list[str]:
    """RMAN DUPLICATE on the target's database host, the auxiliary instance its ORACLE_SID:
    source.database.dsn is RMAN's TARGET, target.database.dsn its AUXILIARY, the duplicate's
    DB_NAME the target's oracle_sid."""
    script = rman_duplicate_script(cfg.source.database.dsn, cfg.target.database.dsn, cfg.target.oracle_sid or "")
    return ["sh", "-c", RMAN_DUPLICATE_SCRIPT, "sh", *_home_sid(cfg.target.tools_dir, cfg.target.oracle_sid or ""), script]


def rman_statements(script: str) -> list[str]:
    """The script's statements one by one (the plan shows them; the tests check each)."""
    body = script.replace("RUN {", "").replace("}", "")
    return [s.strip() for line in body.splitlines() for s in line.split(";") if s.strip()]


# The preflight's look at the auxiliary instance of an RMAN DUPLICATE: started NOMOUNT it has no
# database to log in to (the verification account cannot), so sqlplus as SYSDBA by OS
# authentication on the target's host reads v$instance, which NOMOUNT already has.
AUXILIARY_INSTANCE_SQL = "SELECT status || '|' || version AS instance FROM v$instance"
SQLPLUS_SCRIPT = _ENV + 'printf \'%s\\n\' "$3" | "$ORACLE_HOME/bin/sqlplus" -S -L "/ as sysdba"\n'


def duplicates(cfg: MigrationConfig) -> bool:
    """The whole database goes by RMAN DUPLICATE (no dump file, the target an instance in NOMOUNT)."""
    return cfg.source.engine == cfg.target.engine == "oracle" and cfg.oracle_method == "rman_duplicate"


def auxiliary_instance_argv(cfg: MigrationConfig) -> list[str]:
    query = f"SET HEADING OFF FEEDBACK OFF PAGESIZE 0 LINESIZE 200\n{AUXILIARY_INSTANCE_SQL};\nEXIT"
    return ["sh", "-c", SQLPLUS_SCRIPT, "sh", *_home_sid(cfg.target.tools_dir, cfg.target.oracle_sid or ""), query]


def parse_instance(stdout: str) -> dict[str, str]:
    """{"status", "version"} from the query's one line (STARTED|19.0.0.0.0); ValueError otherwise."""
    errors = [ln.strip() for ln in stdout.splitlines() if re.search(r"\b(?:ORA|SP2)-\d{4,5}\b", ln)]
    rows = [ln.strip() for ln in stdout.splitlines() if "|" in ln and not ln.strip().startswith(("ORA-", "SP2-"))]
    if errors or len(rows) != 1:
        raise ValueError(f"v$instance not read: {'; '.join(errors[:3]) or stdout.strip()[-200:] or 'no output'}")
    status, version = rows[0].split("|", 1)
    return {"status": status.strip(), "version": version.strip()}


# Checked on the target after RMAN DUPLICATE / impdp, first thing of the verify phase
# (tasks/migration/after_restore.py); invalid objects are read on the source too (a vendor's schema
# often carries some: only those the move made invalid are its fault). Every statement goes through
# sqlglot in the unit tests and runs live in tests/integration/test_migration_contract.py.
AFTER_RESTORE_SQL = {
    "invalid_objects": ("SELECT object_type, object_name FROM dba_objects WHERE owner = :schema AND status = 'INVALID' "
                        "ORDER BY object_type, object_name"),
    "open_mode": "SELECT name, open_mode FROM v$database",
}


def judge_duplicate(exit_code: int, transcript: str) -> tuple[bool, str]:
    """RMAN DUPLICATE succeeded: exit 0, "Recovery Manager complete." and no RMAN-/ORA- error
    (parsed as the backup verification parses RMAN); the Chinese reason names what was not."""
    out = parse_rman_output(transcript)
    if exit_code == 0 and out.ok:
        return True, "RMAN DUPLICATE 完成（Recovery Manager complete.）" + (f"：{out.summary[-1]}" if out.summary else "")
    why = "；".join(out.errors[:5]) or ("RMAN 未运行到结束（没有 Recovery Manager complete.）" if not out.complete else "")
    return False, f"RMAN DUPLICATE 失败（退出码 {exit_code}）：{why or '见 RMAN 输出'}"
