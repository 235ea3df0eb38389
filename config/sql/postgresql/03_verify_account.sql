-- ebill-ops: the account of the quarterly backup-restore verification (备份恢复验证), PostgreSQL
-- family. Run by the DBA as a superuser, in the e-bill database, on production and (if it is
-- another server) on the verification server.
--
--   EBOPS_VERIFY_PASSWORD='...' psql "host=... dbname=ebill user=postgres" -f 03_verify_account.sql
--
-- What the account may do, and why:
--   pg_read_all_data  read the vendor's tables, to count and fingerprint production as of the
--                     backup (and, for a backup ebill-ops takes, pg_dump them in one snapshot);
--                     it grants no write on any table.
--   CREATEDB          create the scratch database a backup is restored into, and drop it again.
--                     ebill-ops only creates databases named with its prefix (ebops_verify_...),
--                     marks them with a comment and refuses to drop any database it did not mark.
-- On the backup host, pg_dump/pg_restore log in as this account through that host's ~/.pgpass
-- (mode 0600), as the hospital's own backup job does, so no password travels on a command line.

\set ON_ERROR_STOP on
\if :{?verify_user}   \else \set verify_user ebops_verify  \endif
\if :{?ebops_verify_password} \else \getenv ebops_verify_password EBOPS_VERIFY_PASSWORD \endif
\if :{?ebops_verify_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'no password for the verification account: export EBOPS_VERIFY_PASSWORD or pass -v ebops_verify_password=...'; END $$;
\endif

BEGIN;

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'verify_user') AS verify_missing \gset
\if :verify_missing
CREATE ROLE :"verify_user" LOGIN PASSWORD :'ebops_verify_password';
\else
ALTER ROLE :"verify_user" LOGIN PASSWORD :'ebops_verify_password';
\endif
\unset ebops_verify_password

ALTER ROLE :"verify_user" NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 10;
ALTER ROLE :"verify_user" SET statement_timeout = '4h';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"verify_user";
GRANT pg_read_all_data TO :"verify_user";

COMMIT;
