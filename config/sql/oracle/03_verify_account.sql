-- ebill-ops: the backup-verification account (Oracle), 备份恢复验证. Run by the DBA, connected as SYS:
--
--   sqlplus / as sysdba @03_verify_account.sql
--
-- SQL*Plus prompts for the password (ACCEPT ... HIDE): it is never written in a file.
-- What the quarterly verification does with it, and nothing more:
--   * read the vendor's schema as of an SCN (SELECT ANY TABLE + FLASHBACK ANY TABLE: the vendor's
--     tables differ per site, so they cannot be listed here) and the current SCN (V$DATABASE);
--   * read the RMAN job history (V$RMAN_BACKUP_JOB_DETAILS);
--   * for a server migration, read both sides' catalogue (version, size, tablespaces, objects,
--     open mode, users: the dictionary views granted by name below);
--   * create and drop the scratch schema EBOPS_VERIFY_<time> that impdp imports into (CREATE USER,
--     DROP USER; ebill-ops refuses any name without the prefix, the production schema's name, and a
--     schema it did not create in the same run - see tasks/backup_verify/oracle_steps.py).
-- expdp/impdp and RMAN run on the database host over SSH by OS authentication, not with this account.

SET DEFINE ON
SET VERIFY OFF
WHENEVER SQLERROR EXIT SQL.SQLCODE

DEFINE VERIFY_USER = EBOPS_VERIFY
ACCEPT EBOPS_VERIFY_PASSWORD CHAR PROMPT 'Password for the verification account: ' HIDE

-- ORA-01920 (user exists) on a re-run: the password is then reset instead.
WHENEVER SQLERROR CONTINUE
CREATE USER &&VERIFY_USER IDENTIFIED BY "&&EBOPS_VERIFY_PASSWORD" DEFAULT TABLESPACE USERS TEMPORARY TABLESPACE TEMP;
WHENEVER SQLERROR EXIT SQL.SQLCODE
ALTER USER &&VERIFY_USER IDENTIFIED BY "&&EBOPS_VERIFY_PASSWORD" ACCOUNT UNLOCK;
UNDEFINE EBOPS_VERIFY_PASSWORD

GRANT CREATE SESSION TO &&VERIFY_USER;
GRANT SELECT ANY TABLE TO &&VERIFY_USER;
GRANT FLASHBACK ANY TABLE TO &&VERIFY_USER;
GRANT SELECT ON SYS.V_$DATABASE TO &&VERIFY_USER;
GRANT SELECT ON SYS.V_$RMAN_BACKUP_JOB_DETAILS TO &&VERIFY_USER;
GRANT CREATE USER TO &&VERIFY_USER;
GRANT DROP USER TO &&VERIFY_USER;
-- 服务器迁移 (tasks/migration/db.py, oracle.AFTER_RESTORE_SQL): the same account reads both sides'
-- version, size, tablespaces, objects and open mode. SELECT ANY TABLE does not reach the data
-- dictionary (O7_DICTIONARY_ACCESSIBILITY is FALSE), so each view is granted by name.
GRANT SELECT ON SYS.V_$VERSION TO &&VERIFY_USER;
GRANT SELECT ON SYS.V_$INSTANCE TO &&VERIFY_USER;
GRANT SELECT ON SYS.DBA_SEGMENTS TO &&VERIFY_USER;
GRANT SELECT ON SYS.DBA_OBJECTS TO &&VERIFY_USER;
GRANT SELECT ON SYS.DBA_TABLESPACES TO &&VERIFY_USER;
GRANT SELECT ON SYS.DBA_DATA_FILES TO &&VERIFY_USER;
-- a Data Pump target before the import (tasks/migration/preflight_oracle.py): whether the canonical
-- views' owner and the checks' accounts exist
GRANT SELECT ON SYS.DBA_USERS TO &&VERIFY_USER;
