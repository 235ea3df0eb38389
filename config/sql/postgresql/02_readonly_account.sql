-- ebill-ops: the read-only account the checks use (PostgreSQL family). Run by the DBA after
-- 01_canonical_views.sql, as a superuser (granting pg_monitor needs one), in the e-bill database.
--
-- The password is never written in this file. Give it as a psql variable or, so that it does not
-- show in the process list, in the environment:
--
--   EBOPS_RO_PASSWORD='...' psql "host=... dbname=ebill user=postgres" -f 02_readonly_account.sql
--   psql ... -f 02_readonly_account.sql -v ebops_ro_password='...'
--
-- What the account may do (QH 9.1.1 least privilege): log in, read the canonical views, read
-- monitoring information (pg_monitor: tablespace sizes, settings such as data_directory). It has no
-- privilege on the vendor's tables and every transaction it starts is read-only.

\set ON_ERROR_STOP on
\if :{?canon_schema}  \else \set canon_schema ebill_canon \endif
\if :{?ro_user}       \else \set ro_user ebops_ro         \endif
\if :{?ebops_ro_password} \else \getenv ebops_ro_password EBOPS_RO_PASSWORD \endif
\if :{?ebops_ro_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'no password for the read-only account: export EBOPS_RO_PASSWORD or pass -v ebops_ro_password=...'; END $$;
\endif

BEGIN;

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'ro_user') AS ro_missing \gset
\if :ro_missing
CREATE ROLE :"ro_user" LOGIN PASSWORD :'ebops_ro_password';
\else
ALTER ROLE :"ro_user" LOGIN PASSWORD :'ebops_ro_password';
\endif
\unset ebops_ro_password

ALTER ROLE :"ro_user" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 10;
ALTER ROLE :"ro_user" SET default_transaction_read_only = on;
ALTER ROLE :"ro_user" SET search_path = :"canon_schema";
ALTER ROLE :"ro_user" SET statement_timeout = '10min';

GRANT CONNECT ON DATABASE :"DBNAME" TO :"ro_user";
GRANT pg_monitor TO :"ro_user";
GRANT USAGE ON SCHEMA :"canon_schema" TO :"ro_user";
GRANT SELECT ON ALL TABLES IN SCHEMA :"canon_schema" TO :"ro_user";

COMMIT;
