-- ebill-ops: the indexes the daily data-quality run needs (PostgreSQL family), for the site's DBA.
-- Run after 01_canonical_views.sql, as the vendor schema's owner or a superuser, in the e-bill database:
--
--   psql "host=... dbname=ebill user=postgres" -f 04_quality_indexes.sql -v vendor_schema=ebill
--
-- Why: the daily run judges yesterday's bills, but a hospital keeps 5-10 years online. The canonical
-- views cast the vendor's varchar codes to the reference schema's char(n) (bill_code char(8), ...),
-- and an index on the vendor's varchar column cannot serve a comparison of the cast value; the vendor
-- layout has no index on the issue time or the settlement time either. Without the indexes below the
-- rules that pair a bill with others by number (DQ04 duplicates, DQ11/DQ12 red bills, DQ21 segments)
-- and every period filter read the whole history. Each index below is on exactly the expression the
-- view exposes (`bill_batch_code::char(8)` ...), so the planner matches it through the view; the views
-- and the rules' meaning are unchanged. bench/quality_daily_bench.py prints the plans.
--
-- On the partitioned bill tables an index made on the parent is made on every partition, and on the
-- partitions year-end DDL adds later. CREATE INDEX blocks writes to the table while it builds (minutes
-- on years of bills): run it in a maintenance window, or build each partition's index CONCURRENTLY
-- first and attach it (ALTER INDEX ... ATTACH PARTITION). Re-running the script changes nothing.

\set ON_ERROR_STOP on
\if :{?vendor_schema}  \else \set vendor_schema ebill        \endif
\if :{?invoice_table}  \else \set invoice_table t_ebill_main \endif
\if :{?settle_table}   \else \set settle_table t_his_settle  \endif
\if :{?stock_table}    \else \set stock_table t_bill_stock   \endif

-- the period of every rule: bills issued in [start, end)
CREATE INDEX IF NOT EXISTS ebops_dq_main_issue_time ON :"vendor_schema".:"invoice_table" (ivc_datetime);
-- a bill by its number, as ebill_invoice shows it: DQ04, DQ11 (the blue bill reversed), DQ21, DQ22
CREATE INDEX IF NOT EXISTS ebops_dq_main_code_no
    ON :"vendor_schema".:"invoice_table" ((bill_batch_code::char(8)), (bill_number::char(10)));
-- the red bills of a blue bill: DQ11 (reversed twice), DQ12 (a FLUSHED bill's red bill)
CREATE INDEX IF NOT EXISTS ebops_dq_main_orig_code_no
    ON :"vendor_schema".:"invoice_table" ((rel_bill_batch_code::char(8)), (rel_bill_number::char(10)));
-- the period of the reconciliation: settlements made in [start, end) (DQ19)
CREATE INDEX IF NOT EXISTS ebops_dq_settle_time ON :"vendor_schema".:"settle_table" (settle_datetime);
-- a number segment by its bill code: DQ21's overlap test pairs segments of one code (without it, every
-- segment is compared with every other: the cost grows with the square of the years of segments)
CREATE INDEX IF NOT EXISTS ebops_dq_stock_code ON :"vendor_schema".:"stock_table" ((bill_batch_code::char(8)));

ANALYZE :"vendor_schema".:"invoice_table";
ANALYZE :"vendor_schema".:"settle_table";
ANALYZE :"vendor_schema".:"stock_table";
