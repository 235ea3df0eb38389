"""Backup-restore verification, Oracle side, without a server: RMAN and Data Pump invocations, the
parsing of their output, the RMAN job verdict and the scratch schema.

Oracle cannot run here. The RMAN transcripts and Data Pump logs below are RECORDED STAND-INS FOR
ORACLE'S: written in the shape RMAN and expdp/impdp of Oracle 19c print them (English messages, as
the invocation sets NLS_LANG=AMERICAN_AMERICA; RMAN's dates in the NLS_DATE_FORMAT it sets), not captured
from a live database. The rman/expdp/impdp programs run by the invocation tests are shell stubs that
print what they were given. Every SQL statement is parsed with sqlglot's Oracle dialect.
"""
from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlglot
from sqlglot import exp

from tasks.backup.verify import oracle_steps as steps
from tasks.backup.verify.oracle_steps import (
    DEFAULT_SCRATCH_PREFIX,
    EXPDP_SCRIPT,
    IMPDP_SCRIPT,
    RMAN_SCRIPT,
    create_scratch_schema_sql,
    drop_scratch_schema_sql,
    expdp_invocation,
    impdp_invocation,
    judge_rman_jobs,
    parse_datapump_log,
    parse_rman_output,
    refuse_scratch,
    rman_invocation,
    rman_jobs_from_rows,
    rman_script,
    scn_from_rows,
)
from tasks.backup.verify import reading as rd
from tasks.connect.database.params import _PARAM, _TOKENS

HOME, SID = "/u01/app/oracle/product/19.0.0/dbhome_1", "ebill"
SCRATCH = "EBOPS_VERIFY_20260331"
DP = dict(oracle_home=HOME, oracle_sid=SID, directory="EBOPS_DP", dumpfile="ebill_20260331_%U.dmp",
          logfile="ebill_20260331_exp.log")


def _binds(sql: str) -> set[str]:
    parts = _TOKENS.split(sql)
    return {m for i, p in enumerate(parts) if i % 2 == 0 for m in _PARAM.findall(p)}


# ---------------------------------------------------------------- SQL
def test_queries_parse_as_oracle_selects_with_exactly_their_binds():
    for sql, binds in [(steps.RMAN_JOB_DETAILS_SQL, {"since"}), (steps.SCRATCH_EXISTS_SQL, {"name"}),
                       (steps.ORACLE_CURRENT_SCN_SQL, set())]:
        tree = sqlglot.parse_one(sql, read="oracle")
        assert isinstance(tree, exp.Select) and _binds(sql) == binds, sql
    jobs = sqlglot.parse_one(steps.RMAN_JOB_DETAILS_SQL, read="oracle")
    assert [c.alias_or_name for c in jobs.selects][:8] == ["session_key", "input_type", "status", "start_time",
                                                          "end_time", "input_bytes", "output_bytes", "elapsed_seconds"]
    assert jobs.args["limit"].args["count"].name == "20"  # FETCH FIRST 20 ROWS ONLY
    assert [o.this.name for o in jobs.args["order"].expressions] == ["start_time", "session_key"]
    assert all(o.args.get("desc") for o in jobs.args["order"].expressions)


def test_current_scn_sql_is_reused_from_fingerprint_not_copied():
    assert steps.ORACLE_CURRENT_SCN_SQL is rd.ORACLE_CURRENT_SCN_SQL
    assert scn_from_rows([{"current_scn": Decimal("918273645")}]) == 918273645
    with pytest.raises(ValueError, match="expected one"):
        scn_from_rows([])


def _words(sql: str) -> list[str]:
    return [t.text for t in sqlglot.tokenize(sql, read="oracle")]


def test_scratch_ddl_is_one_statement_of_quoted_upper_case_names_and_no_password():
    create = create_scratch_schema_sql("ebops_verify_20260331", "ebops_verify")
    drop = drop_scratch_schema_sql(SCRATCH)
    for sql in create + drop:
        # sqlglot has no model of CREATE/DROP USER: it falls back to a Command. That still proves it is
        # one statement; the tokens below prove the quoting and the clause order.
        assert isinstance(sqlglot.parse_one(sql, read="oracle"), exp.Command)
        assert len(sqlglot.parse(sql, read="oracle")) == 1 and ";" not in sql
    assert _words(create[0]) == ["CREATE", "USER", SCRATCH, "NO", "AUTHENTICATION", "DEFAULT", "TABLESPACE",
                                 "EBOPS_VERIFY", "QUOTA", "UNLIMITED", "ON", "EBOPS_VERIFY"]
    assert f'"{SCRATCH}"' in create[0] and "IDENTIFIED" not in create[0].upper()
    assert _words(drop[0]) == ["DROP", "USER", SCRATCH, "CASCADE"] and f'"{SCRATCH}"' in drop[0]


@pytest.mark.parametrize("name", ["EBILL", "ebops_verify_", "EBOPS_VERIFY_X\" CASCADE; DROP USER \"EBILL",
                                  "SYS", ""])
def test_scratch_ddl_refuses_names_that_are_not_prefixed_scratch_schemas(name):
    with pytest.raises(ValueError, match="scratch"):
        drop_scratch_schema_sql(name)
    with pytest.raises(ValueError, match="scratch"):
        create_scratch_schema_sql(name, "USERS")
    with pytest.raises(ValueError, match="tablespace"):
        create_scratch_schema_sql(SCRATCH, 'USERS" QUOTA UNLIMITED ON "SYSTEM')


def test_refuse_scratch():
    assert refuse_scratch("ebops_verify_20260331", "EBILL") is None  # Oracle folds to upper case
    same = refuse_scratch("ebill", "EBILL")
    assert same and "生产" in same and "production schema" in same
    # even a prefixed name is refused when it is the production schema itself
    assert "production schema" in refuse_scratch("EBOPS_VERIFY_APP", "ebops_verify_app")
    lacks = refuse_scratch("EBILL_COPY", "EBILL")
    assert lacks and DEFAULT_SCRATCH_PREFIX in lacks and "开头" in lacks
    assert "prefix" in refuse_scratch(DEFAULT_SCRATCH_PREFIX, "EBILL")  # the bare prefix names no one
    assert "identifier" in refuse_scratch("EBOPS_VERIFY_1;--", "EBILL")
    assert refuse_scratch("QA_T1", "EBILL", prefix="qa_") is None
    assert "prefix" in refuse_scratch("ANYTHING", "EBILL", prefix="")


# ---------------------------------------------------------------- invocations
def _stub(tmp_path, name: str, body: str) -> str:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    prog = home / "bin" / name
    prog.write_text("#!/bin/sh\n" + body)
    prog.chmod(0o755)
    return str(home)


def _run(script: str, args: list[str], tmp_path) -> subprocess.CompletedProcess:
    # exactly what HostSession.run_script sends: sh -c <script> sh <args...>
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "TWO_TASK": "prod_tns", "NLS_LANG": "SIMPLIFIED CHINESE"}
    return subprocess.run(["sh", "-c", script, "sh", *args], capture_output=True, text=True, env=env, timeout=30)


def test_rman_commands():
    assert rman_script("validate") == "RESTORE DATABASE VALIDATE CHECK LOGICAL;"
    assert rman_script("validate_archivelog") == "RESTORE ARCHIVELOG ALL VALIDATE;"
    assert rman_script("preview") == "RESTORE DATABASE PREVIEW SUMMARY;"
    with pytest.raises(ValueError, match="kind"):
        rman_script("restore")


def test_rman_invocation_feeds_the_commands_on_stdin_with_os_authentication(tmp_path):
    home = _stub(tmp_path, "rman", 'echo "argv=$*"; echo "env=$ORACLE_HOME|$ORACLE_SID|$NLS_LANG|${TWO_TASK-unset}"\n'
                                   'sed "s/^/stdin=/"; exit 3\n')
    script, args = rman_invocation("validate", home, SID)
    assert script is RMAN_SCRIPT and args == [home, SID, "RESTORE DATABASE VALIDATE CHECK LOGICAL;"]
    assert home not in script and "RESTORE" not in script and "password" not in script.lower()
    out = _run(script, args, tmp_path)
    assert out.returncode == 3  # rman's exit status is the script's
    assert out.stdout.splitlines() == ["argv=target / nocatalog",
                                       f"env={home}|{SID}|AMERICAN_AMERICA.AL32UTF8|unset",
                                       "stdin=RESTORE DATABASE VALIDATE CHECK LOGICAL;"]


@pytest.mark.parametrize("home,sid,field", [("u01/app/oracle", SID, "oracle_home"), ("/u01/$(reboot)", SID, "oracle_home"),
                                            ("/u01/../etc", SID, "oracle_home"), (HOME, "ebill;reboot", "oracle_sid"),
                                            (HOME, "", "oracle_sid")])
def test_rman_invocation_refuses_odd_home_and_sid(home, sid, field):
    with pytest.raises(ValueError, match=f"^{field} "):
        rman_invocation("preview", home, sid)


def test_expdp_writes_a_private_parameter_file_from_the_arguments_and_removes_it(tmp_path):
    home = _stub(tmp_path, "expdp", 'par=${1#parfile=}; ls -l "$par" | cut -c1-10; cat "$par"; echo "par=$par"\n')
    script, args = expdp_invocation(**{**DP, "oracle_home": home}, schema="ebill", flashback_scn=918273645)
    assert script is EXPDP_SCRIPT
    assert args[2:] == ['USERID="/ as sysdba"', "DIRECTORY=EBOPS_DP", "DUMPFILE=ebill_20260331_%U.dmp",
                        "LOGFILE=ebill_20260331_exp.log", "SCHEMAS=EBILL", "REUSE_DUMPFILES=NO", "FLASHBACK_SCN=918273645"]
    assert not any(a in script for a in args)
    out = _run(script, args, tmp_path)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[0] == "-rw-------" and lines[1:-1] == args[2:]
    assert not os.path.exists(lines[-1].removeprefix("par="))  # removed on exit
    no_scn = expdp_invocation(**DP, schema="EBILL", flashback_scn=None, login="external")[1]
    assert "USERID=/" in no_scn and not any(a.startswith("FLASHBACK_SCN") for a in no_scn)


def test_impdp_remaps_into_the_scratch_schema_and_never_replaces(tmp_path):
    home = _stub(tmp_path, "impdp", 'cat "${1#parfile=}"; exit 5\n')
    script, args = impdp_invocation(**{**DP, "oracle_home": home, "logfile": "ebill_20260331_imp.log"},
                                    source_schema="EBILL", scratch_schema="ebops_verify_20260331",
                                    remap_tablespaces={"EBILL_DATA": "EBOPS_VERIFY", "ebill_idx": "EBOPS_VERIFY"})
    assert script is IMPDP_SCRIPT and not any(a in script for a in args)
    assert {"SCHEMAS=EBILL", f"REMAP_SCHEMA=EBILL:{SCRATCH}", "TABLE_EXISTS_ACTION=SKIP", "EXCLUDE=USER",
            "EXCLUDE=GRANT", "EXCLUDE=JOB", "EXCLUDE=PROCOBJ", "REMAP_TABLESPACE=EBILL_DATA:EBOPS_VERIFY",
            "REMAP_TABLESPACE=EBILL_IDX:EBOPS_VERIFY"} <= set(args)
    assert not any("REPLACE" in a or "TRUNCATE" in a or "APPEND" in a for a in args)
    out = _run(script, args, tmp_path)
    assert out.returncode == 5 and out.stdout.splitlines() == args[2:]


def test_impdp_refuses_to_import_into_production_or_an_unprefixed_schema():
    with pytest.raises(ValueError, match="production schema"):
        impdp_invocation(**DP, source_schema="EBILL", scratch_schema="ebill", remap_tablespaces=None)
    with pytest.raises(ValueError, match="lacks the prefix"):
        impdp_invocation(**DP, source_schema="EBILL", scratch_schema="EBILL_TEST", remap_tablespaces=None)


@pytest.mark.parametrize("field,change", [
    ("schema", {"schema": "EBILL; DROP USER EBILL"}), ("schema", {"schema": "EBILL#OLD"}),
    ("directory", {"directory": "DP DIR"}), ("directory", {"directory": "1DP"}),
    ("dumpfile", {"dumpfile": "../../etc/passwd"}), ("dumpfile", {"dumpfile": 'x".dmp'}),
    ("dumpfile", {"dumpfile": "OTHER_DIR:x.dmp"}), ("dumpfile", {"dumpfile": "a.dmp\nUSERID=sys"}),
    ("logfile", {"logfile": "a.log,b.log"}), ("logfile", {"logfile": "ebill_20260331_%U.dmp"}),
    ("flashback_scn", {"flashback_scn": -1}), ("flashback_scn", {"flashback_scn": True}),
    ("login", {"login": "system/manager"}), ("oracle_sid", {"oracle_sid": "ebill sid"}),
])
def test_datapump_refuses_bad_names_naming_the_field(field, change):
    with pytest.raises(ValueError, match=f"^{field} "):
        expdp_invocation(**{**DP, "schema": "EBILL", "flashback_scn": None, **change})


def test_impdp_refuses_bad_tablespace_and_scratch_names():
    with pytest.raises(ValueError, match="^remap_tablespaces "):
        impdp_invocation(**DP, source_schema="EBILL", scratch_schema=SCRATCH, remap_tablespaces={"A:B": "C"})
    with pytest.raises(ValueError, match="^scratch_schema "):
        impdp_invocation(**DP, source_schema="EBILL", scratch_schema="EBOPS_VERIFY_#1", remap_tablespaces=None)


# ---------------------------------------------------------------- RMAN output (recorded stand-ins)
BANNER = """
Recovery Manager: Release 19.0.0.0.0 - Production on Tue Mar 31 23:05:01 2026
Version 19.22.0.0.0

Copyright (c) 1982, 2019, Oracle and/or its affiliates.  All rights reserved.

connected to target database: EBILL (DBID=3141592653)
using target database control file instead of recovery catalog

RMAN> 
Starting restore at 2026-03-31 23:05:03
allocated channel: ORA_DISK_1
channel ORA_DISK_1: SID=1521 device type=DISK
"""
END = """
RMAN> 

Recovery Manager complete.
"""
PIECE = "/backup/rman/EBILL/db_L0_EBILL_20260329_1840_{}.bkp"

VALIDATE_OK = BANNER + f"""
channel ORA_DISK_1: starting validation of datafile backup set
channel ORA_DISK_1: reading from backup piece {PIECE.format(1)}
channel ORA_DISK_1: piece handle={PIECE.format(1)} tag=WEEKLY_L0
channel ORA_DISK_1: restored backup piece 1
channel ORA_DISK_1: validation complete, elapsed time: 00:03:12
channel ORA_DISK_1: starting validation of datafile backup set
channel ORA_DISK_1: reading from backup piece {PIECE.format(2)}
channel ORA_DISK_1: piece handle={PIECE.format(2)} tag=WEEKLY_L0
channel ORA_DISK_1: restored backup piece 1
channel ORA_DISK_1: validation complete, elapsed time: 00:01:47
Finished restore at 2026-03-31 23:10:05
""" + END

CORRUPT_LISTING = f"""
channel ORA_DISK_1: starting validation of datafile backup set
channel ORA_DISK_1: reading from backup piece {PIECE.format(1)}
List of Datafiles
=================
File Status Marked Corrupt Empty Blocks Blocks Examined High SCN
---- ------ -------------- ------------ --------------- ----------
5    FAILED 0              1024         3276800         918273645
  File Name: /oradata/EBILL/ebill_data01.dbf
  Block Type Blocks Failing Blocks Processed
  ---------- -------------- ----------------
  Data       2              2801544
  Index      1              402113
  Other      0              72119

File Status Marked Corrupt Empty Blocks Blocks Examined High SCN
---- ------ -------------- ------------ --------------- ----------
6    OK     0              88           1310720         918270001
  File Name: /oradata/EBILL/ebill_idx01.dbf
  Block Type Blocks Failing Blocks Processed
  ---------- -------------- ----------------
  Data       0              0
  Index      0              1288870
  Other      0              21762

File Status Marked Corrupt Empty Blocks Blocks Examined High SCN
---- ------ -------------- ------------ --------------- ----------
7    FAILED 2              12           655360          918273001
  File Name: /oradata/EBILL/ebill_data02.dbf
  Block Type Blocks Failing Blocks Processed
  ---------- -------------- ----------------
  Data       2              640000
  Index      0              10240
  Other      0              5108

File Type    Status Blocks Failing Blocks Examined
------------ ------ -------------- ---------------
Control File OK     0              1180

validate found one or more corrupt blocks
See trace file /u01/app/oracle/diag/rdbms/ebill/ebill/trace/ebill_ora_20931.trc for details
"""
CORRUPT_ERRORS = """RMAN-00571: ===========================================================
RMAN-00569: =============== ERROR MESSAGE STACK FOLLOWS ===============
RMAN-00571: ===========================================================
RMAN-03009: failure of restore command on ORA_DISK_1 channel at 2026-03-31 23:08:40
ORA-19566: exceeded limit of 0 corrupt blocks for file /oradata/EBILL/ebill_data01.dbf
"""

FAILOVER = BANNER + f"""
channel ORA_DISK_1: starting validation of datafile backup set
channel ORA_DISK_1: reading from backup piece {PIECE.format(1)}
channel ORA_DISK_1: ORA-19870: error while restoring backup piece {PIECE.format(1)}
ORA-19599: block number 88321 is corrupt in backup piece {PIECE.format(1)}

failover to previous backup

channel ORA_DISK_1: starting validation of datafile backup set
channel ORA_DISK_1: reading from backup piece /backup/rman/EBILL/db_L0_EBILL_20260322_1795_1.bkp
channel ORA_DISK_1: restored backup piece 1
channel ORA_DISK_1: validation complete, elapsed time: 00:03:05
Finished restore at 2026-03-31 23:11:52
""" + END

PREVIEW = BANNER + """

List of Backups
===============
Key     TY LV S Device Type Completion Time     #Pieces #Copies Compressed Tag
------- -- -- - ----------- ------------------- ------- ------- ---------- ---
1840    B  0  A DISK        2026-03-29 01:47:12 1       1       NO         WEEKLY_L0
1841    B  0  A DISK        2026-03-29 01:52:40 1       1       NO         WEEKLY_L0
1853    B  A  A DISK        2026-03-31 01:13:20 1       1       NO         DAILY_ARCH
using channel ORA_DISK_1

Media recovery start SCN is 918201114
Recovery must be done beyond SCN 918210552 to clear datafile fuzziness
Finished restore at 2026-03-31 23:12:41
""" + END

NOT_FOUND = BANNER + """
RMAN-00571: ===========================================================
RMAN-00569: =============== ERROR MESSAGE STACK FOLLOWS ===============
RMAN-00571: ===========================================================
RMAN-03002: failure of restore command at 2026-03-31 23:05:04
RMAN-06026: some targets not found - aborting restore
RMAN-06023: no backup or copy of datafile 7 found to restore
RMAN-06023: no backup or copy of datafile 5 found to restore
""" + END


def test_rman_validate_ok():
    out = parse_rman_output(VALIDATE_OK)
    assert out.ok and out.complete and out.errors == [] and out.corrupt_blocks is None
    assert out.summary[0].startswith("connected to target database: EBILL")
    assert sum("validation complete" in s for s in out.summary) == 2
    assert out.summary[-1] == "Finished restore at 2026-03-31 23:10:05"


def test_rman_corrupt_listing_with_error_stack():
    out = parse_rman_output(BANNER + CORRUPT_LISTING + CORRUPT_ERRORS + END)
    assert not out.ok and out.complete
    # file 5: 2 + 1 failing; file 7: 2 marked corrupt that are also the 2 failing ones, counted once
    assert out.corrupt_blocks == 5
    assert out.errors == ["RMAN-03009: failure of restore command on ORA_DISK_1 channel at 2026-03-31 23:08:40",
                          "ORA-19566: exceeded limit of 0 corrupt blocks for file /oradata/EBILL/ebill_data01.dbf"]
    assert "validate found one or more corrupt blocks" in out.summary


def test_rman_corrupt_listing_alone_fails():
    out = parse_rman_output(BANNER + CORRUPT_LISTING + END)
    assert out.errors == [] and out.complete and out.corrupt_blocks == 5 and not out.ok


def test_rman_clean_listing_counts_zero_and_passes():
    clean = CORRUPT_LISTING.replace("FAILED", "OK    ").replace("Data       2 ", "Data       0 ") \
        .replace("Index      1 ", "Index      0 ").replace("7    OK     2 ", "7    OK     0 ") \
        .replace("validate found one or more corrupt blocks", "")
    out = parse_rman_output(BANNER + clean + "Finished restore at 2026-03-31 23:10:05\n" + END)
    assert out.corrupt_blocks == 0 and out.ok


def test_rman_failover_to_an_older_backup_is_not_ok():
    out = parse_rman_output(FAILOVER)
    assert out.complete and not out.ok and "failover to previous backup" in out.summary
    assert [e.split(":")[0] for e in out.errors] == ["channel ORA_DISK_1", "ORA-19599"]
    assert "ORA-19870" in out.errors[0]


def test_rman_preview():
    out = parse_rman_output(PREVIEW)
    assert out.ok and out.corrupt_blocks is None
    assert "Media recovery start SCN is 918201114" in out.summary
    assert "Recovery must be done beyond SCN 918210552 to clear datafile fuzziness" in out.summary


def test_rman_targets_not_found():
    out = parse_rman_output(NOT_FOUND)
    assert not out.ok and out.complete
    assert [e[:10] for e in out.errors] == ["RMAN-03002", "RMAN-06026", "RMAN-06023", "RMAN-06023"]


def test_rman_cut_short_is_not_ok():
    out = parse_rman_output(VALIDATE_OK.replace("Recovery Manager complete.", ""))
    assert not out.complete and not out.ok and out.errors == []


# ---------------------------------------------------------------- Data Pump logs (recorded stand-ins)
DP_HEAD = """;;; 
{tool}: Release 19.0.0.0.0 - Production on Tue Mar 31 {at} 2026
Version 19.22.0.0.0

Copyright (c) 1982, 2019, Oracle and/or its affiliates.  All rights reserved.
;;; 
Connected to: Oracle Database 19c Enterprise Edition Release 19.0.0.0.0 - Production
"""
EXPORT_LOG = DP_HEAD.format(tool="Export", at="22:40:02") + """\
Starting "SYS"."SYS_EXPORT_SCHEMA_01":  "/******** AS SYSDBA" parfile=/tmp/tmp.Q8c1MZ 
31-MAR-26 22:40:09.115: W-1 Processing object type SCHEMA_EXPORT/TABLE/TABLE_DATA
31-MAR-26 22:41:50.402: W-1 . . exported "EBILL"."T_EBILL_MAIN":"P2025"  812.3 MB 3210456 rows in 101 seconds using direct_path
31-MAR-26 22:42:31.877: W-1 . . exported "EBILL"."T_EBILL_MAIN":"P2026"  201.7 MB  798544 rows in 41 seconds using direct_path
31-MAR-26 22:47:02.009: W-1 . . exported "EBILL"."T_EBILL_DETAIL":"P2025"  1.912 GB 15502311 rows in 270 seconds using direct_path
31-MAR-26 22:48:12.551: W-1 . . exported "EBILL"."T_EBILL_DETAIL":"P2026"  488.0 MB 3870112 rows in 70 seconds using direct_path
31-MAR-26 22:48:13.020: W-1 . . exported "EBILL"."T_STOCK"  64.21 KB     412 rows in 0 seconds using direct_path
31-MAR-26 22:48:13.101: W-1 . . exported "EBILL"."T_LOG_NOPK"      0 KB       0 rows in 0 seconds using direct_path
31-MAR-26 22:48:20.330: W-1      Completed 6 TABLE_EXPORT/TABLE/TABLE_DATA objects in 491 seconds
31-MAR-26 22:48:21.004: Master table "SYS"."SYS_EXPORT_SCHEMA_01" successfully loaded/unloaded
******************************************************************************
Dump file set for SYS.SYS_EXPORT_SCHEMA_01 is:
  /u02/dpdump/ebill_20260331_01.dmp
31-MAR-26 22:48:21.310: Job "SYS"."SYS_EXPORT_SCHEMA_01" successfully completed at Tue Mar 31 22:48:21 2026 elapsed 0 00:08:19
"""
IMPORT_HEAD = DP_HEAD.format(tool="Import", at="23:20:01") + """\
Master table "SYS"."SYS_IMPORT_SCHEMA_01" successfully loaded/unloaded
Starting "SYS"."SYS_IMPORT_SCHEMA_01":  "/******** AS SYSDBA" parfile=/tmp/tmp.k3J9xQ2 
Processing object type SCHEMA_EXPORT/PRE_SCHEMA/PROCACT_SCHEMA
Processing object type SCHEMA_EXPORT/TABLE/TABLE
Processing object type SCHEMA_EXPORT/TABLE/TABLE_DATA
. . imported "EBOPS_VERIFY_20260331"."T_EBILL_MAIN":"P2025"  812.3 MB 3210456 rows
. . imported "EBOPS_VERIFY_20260331"."T_EBILL_MAIN":"P2026"  201.7 MB  798544 rows
. . imported "EBOPS_VERIFY_20260331"."T_EBILL_DETAIL":"P2025"  1.912 GB 15502311 rows
. . imported "EBOPS_VERIFY_20260331"."T_EBILL_DETAIL":"P2026"  488.0 MB 3870112 rows
. . imported "EBOPS_VERIFY_20260331"."T_STOCK"  64.21 KB     412 rows
. . imported "EBOPS_VERIFY_20260331"."T_LOG_NOPK"      0 KB       0 rows
Processing object type SCHEMA_EXPORT/TABLE/INDEX/INDEX
"""
IMPORT_OK = IMPORT_HEAD + """\
Processing object type SCHEMA_EXPORT/TABLE/CONSTRAINT/CONSTRAINT
Processing object type SCHEMA_EXPORT/TABLE/INDEX/STATISTICS/INDEX_STATISTICS
Processing object type SCHEMA_EXPORT/TABLE/STATISTICS/TABLE_STATISTICS
Processing object type SCHEMA_EXPORT/STATISTICS/MARKER
Job "SYS"."SYS_IMPORT_SCHEMA_01" successfully completed at Tue Mar 31 23:41:07 2026 elapsed 0 00:21:05
"""
IMPORT_2_ERRORS = IMPORT_HEAD + """\
ORA-39083: Object type INDEX:"EBOPS_VERIFY_20260331"."IDX_MAIN_PAYER" failed to create with error:
ORA-01652: unable to extend temp segment by 128 in tablespace EBOPS_VERIFY

Failing sql is:
CREATE INDEX "EBOPS_VERIFY_20260331"."IDX_MAIN_PAYER" ON "EBOPS_VERIFY_20260331"."T_EBILL_MAIN" ("PAYER") PCTFREE 10 INITRANS 2 MAXTRANS 255  STORAGE(INITIAL 65536 NEXT 1048576 MINEXTENTS 1 MAXEXTENTS 2147483645) TABLESPACE "EBOPS_VERIFY" PARALLEL 1

Processing object type SCHEMA_EXPORT/TABLE/CONSTRAINT/REF_CONSTRAINT
ORA-39083: Object type REF_CONSTRAINT:"EBOPS_VERIFY_20260331"."FK_DETAIL_MAIN" failed to create with error:
ORA-02298: cannot validate (EBOPS_VERIFY_20260331.FK_DETAIL_MAIN) - parent keys not found

Failing sql is:
ALTER TABLE "EBOPS_VERIFY_20260331"."T_EBILL_DETAIL" ADD CONSTRAINT "FK_DETAIL_MAIN" FOREIGN KEY ("MAIN_ID") REFERENCES "EBOPS_VERIFY_20260331"."T_EBILL_MAIN" ("ID") ENABLE

Job "SYS"."SYS_IMPORT_SCHEMA_01" completed with 2 error(s) at Tue Mar 31 23:44:52 2026 elapsed 0 00:24:50
"""
ROWS = {"T_EBILL_MAIN": 3210456 + 798544, "T_EBILL_DETAIL": 15502311 + 3870112, "T_STOCK": 412, "T_LOG_NOPK": 0}


def test_impdp_log_success_sums_partitions_per_table():
    out = parse_datapump_log(IMPORT_OK)
    assert out.ok and out.completed and out.error_count == 0 and out.errors == [] and out.warnings == []
    assert out.rows_per_table == ROWS
    assert out.job_line.startswith('Job "SYS"."SYS_IMPORT_SCHEMA_01" successfully completed')


def test_expdp_log_with_logtime_and_metrics_prefixes_matches_the_import():
    out = parse_datapump_log(EXPORT_LOG)
    assert out.ok and out.error_count == 0
    assert out.rows_per_table == parse_datapump_log(IMPORT_OK).rows_per_table == ROWS


def test_impdp_log_completed_with_errors():
    out = parse_datapump_log(IMPORT_2_ERRORS)
    assert not out.ok and out.completed and out.error_count == 2
    assert [e[:9] for e in out.errors] == ["ORA-39083", "ORA-01652", "ORA-39083", "ORA-02298"]
    assert out.rows_per_table == ROWS  # the data itself arrived


def test_impdp_log_compilation_warnings_alone_are_reported_not_failed():
    log = IMPORT_HEAD + """\
Processing object type SCHEMA_EXPORT/PACKAGE/PACKAGE_BODY
ORA-39082: Object type PACKAGE_BODY:"EBOPS_VERIFY_20260331"."PKG_EBILL_SYNC" created with compilation warnings

Job "SYS"."SYS_IMPORT_SCHEMA_01" completed with 1 error(s) at Tue Mar 31 23:41:07 2026 elapsed 0 00:21:05
"""
    out = parse_datapump_log(log)
    assert out.ok and out.error_count == 1 and out.errors == [] and len(out.warnings) == 1
    # a count larger than what the log shows is not waved through
    assert not parse_datapump_log(log.replace("with 1 error(s)", "with 2 error(s)")).ok


def test_datapump_log_cut_short_or_stopped_is_not_ok():
    out = parse_datapump_log(IMPORT_HEAD)
    assert not out.ok and not out.completed and out.error_count is None and out.rows_per_table == ROWS
    stopped = IMPORT_HEAD + 'ORA-39014: One or more workers have prematurely exited.\n' \
                            'Job "SYS"."SYS_IMPORT_SCHEMA_01" stopped due to fatal error at Tue Mar 31 23:30:00 2026\n'
    out = parse_datapump_log(stopped)
    assert not out.ok and not out.completed and out.errors[0].startswith("ORA-39014")


# ---------------------------------------------------------------- RMAN job history
NOW = datetime(2026, 3, 31, 9, 0)


def _row(key, input_type, status, start, hours=2.0):
    return {"session_key": Decimal(key), "input_type": input_type, "status": status, "start_time": start,
            "end_time": start + timedelta(hours=hours), "input_bytes": Decimal("1.2e12"), "output_bytes": 310e9,
            "elapsed_seconds": Decimal(hours * 3600), "output_device_type": "DISK"}


def _jobs(*rows):
    return rman_jobs_from_rows(list(rows))


def test_rman_jobs_from_rows_converts_oracle_numbers():
    job = _jobs(_row(1852, "db incr", "COMPLETED ", datetime(2026, 3, 31, 1)))[0]
    assert (job.session_key, job.input_type, job.status) == (1852, "DB INCR", "COMPLETED")
    assert job.input_bytes == 1_200_000_000_000 and isinstance(job.input_bytes, int) and job.elapsed_seconds == 7200.0


def test_newest_whole_database_job_completed_is_ok_despite_an_older_failure_and_newer_archivelog():
    ok, why = judge_rman_jobs(_jobs(_row(1860, "ARCHIVELOG", "FAILED", datetime(2026, 3, 31, 6)),
                                    _row(1852, "DB INCR", "COMPLETED", datetime(2026, 3, 31, 1)),
                                    _row(1840, "DB FULL", "FAILED", datetime(2026, 3, 29, 1))), NOW)
    assert ok and "1852" in why and "COMPLETED" in why


@pytest.mark.parametrize("status,word", [("FAILED", "失败"), ("COMPLETED WITH WARNINGS", "警告"),
                                         ("COMPLETED WITH ERRORS", "错误")])
def test_newest_whole_database_job_not_completed_is_named(status, word):
    ok, why = judge_rman_jobs(_jobs(_row(1840, "DB FULL", "COMPLETED", datetime(2026, 3, 29, 1)),
                                    _row(1852, "DB INCR", status, datetime(2026, 3, 31, 1))), NOW)
    assert not ok and status in why and word in why and "1852" in why


def test_running_job_is_passed_over_unless_stale():
    done = _row(1840, "DB FULL", "COMPLETED", datetime(2026, 3, 29, 1))
    ok, why = judge_rman_jobs(_jobs(done, _row(1852, "DB INCR", "RUNNING", datetime(2026, 3, 31, 8))), NOW)
    assert ok and "1840" in why and "1852" in why and "正在运行" in why
    ok, why = judge_rman_jobs(_jobs(done, _row(1852, "DB INCR", "RUNNING WITH WARNINGS", datetime(2026, 3, 29, 23))), NOW)
    assert not ok and "RUNNING WITH WARNINGS" in why and "24 小时" in why


def test_no_whole_database_job_is_not_ok():
    ok, why = judge_rman_jobs(_jobs(_row(1860, "ARCHIVELOG", "COMPLETED", datetime(2026, 3, 31, 6))), NOW)
    assert not ok and "DB FULL" in why
    assert judge_rman_jobs([], NOW)[0] is False


def test_scripts_are_fixed_text_whatever_the_inputs():
    a = impdp_invocation(**DP, source_schema="EBILL", scratch_schema=SCRATCH, remap_tablespaces=None)
    b = impdp_invocation(**{**DP, "directory": "OTHER", "dumpfile": "x.dmp", "logfile": "x.log"},
                         source_schema="HIS", scratch_schema="EBOPS_VERIFY_HIS", remap_tablespaces={"A": "B"})
    assert a[0] == b[0] == IMPDP_SCRIPT and a[1] != b[1]
    assert rman_invocation("validate", HOME, SID)[0] == rman_invocation("preview", "/opt/oracle", "his1")[0]
    for script in (RMAN_SCRIPT, EXPDP_SCRIPT, IMPDP_SCRIPT):
        assert "$1" in script and "EBILL" not in script and "sysdba" not in script
    assert "umask 077" in EXPDP_SCRIPT and "umask 077" in IMPDP_SCRIPT
