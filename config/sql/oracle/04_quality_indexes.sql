-- ebill-ops: the function-based indexes the daily data-quality run needs (Oracle 11g-19c).
-- Run by the site's DBA in SQL*Plus or SQLcl after 01_canonical_views.sql, with the same DEFINE values:
--
--   sqlplus / as sysdba @04_quality_indexes.sql
--
-- Why: the daily run judges yesterday's bills, but a hospital keeps 5-10 years online. The canonical
-- views CAST the vendor's columns to the reference schema's types (CAST(BILL_BATCH_CODE AS CHAR(8)),
-- CAST(IVC_DATETIME AS TIMESTAMP), ...); Oracle does not use an index on the bare column for a
-- predicate on the CAST, so every period filter and every pairing by number would read the whole
-- history. A function-based index on exactly the view's expression is matched through the view (the
-- expressions below must stay character for character those of 01_canonical_views.sql: change both
-- together; tests/unit/test_sql_scripts.py compares them). Function-based indexes need
-- QUERY_REWRITE_ENABLED = TRUE (the default since 10g) and statistics: gather them after creating
-- (EXEC DBMS_STATS.GATHER_TABLE_STATS('&&VENDOR_SCHEMA', '&&INVOICE_TABLE', cascade => TRUE)).
--
-- Where the bill tables are partitioned by issue time, add LOCAL before each `;` of the bill
-- tables' indexes so that year-end partition maintenance keeps them valid. CREATE INDEX locks the
-- table against DML while it builds: ONLINE (Enterprise Edition) or a maintenance window.
-- ORA-00955 (name already used) on a re-run is expected: errors are tolerated in this script.

SET DEFINE ON
SET VERIFY OFF
WHENEVER SQLERROR CONTINUE

DEFINE VENDOR_SCHEMA   = EBILL
DEFINE INVOICE_TABLE   = T_EBILL_MAIN
DEFINE ITEM_TABLE      = T_EBILL_DETAIL
DEFINE SETTLE_TABLE    = T_HIS_SETTLE
DEFINE STOCK_TABLE     = T_BILL_STOCK
DEFINE COL_ISSUE_TIME  = IVC_DATETIME
DEFINE COL_SETTLE_NO   = HIS_SERIAL_NO

-- The indexes belong to the vendor's schema, beside their tables (an unqualified index name is
-- created in the session's current schema).
ALTER SESSION SET CURRENT_SCHEMA = &&VENDOR_SCHEMA;

-- the period of every rule: bills issued in [start, end)
CREATE INDEX EBOPS_DQ_MAIN_ISSUE_TIME ON &&VENDOR_SCHEMA..&&INVOICE_TABLE
    (CAST(&&COL_ISSUE_TIME AS TIMESTAMP));
-- a bill by its number: DQ04 duplicates, DQ11 (the blue bill reversed), DQ21, DQ22
CREATE INDEX EBOPS_DQ_MAIN_CODE_NO ON &&VENDOR_SCHEMA..&&INVOICE_TABLE
    (CAST(BILL_BATCH_CODE AS CHAR(8)), CAST(BILL_NUMBER AS CHAR(10)));
-- the red bills of a blue bill: DQ11 (reversed twice), DQ12
CREATE INDEX EBOPS_DQ_MAIN_ORIG_CODE_NO ON &&VENDOR_SCHEMA..&&INVOICE_TABLE
    (CAST(REL_BILL_BATCH_CODE AS CHAR(8)), CAST(REL_BILL_NUMBER AS CHAR(10)));
-- a bill by its HIS settlement: DQ19
CREATE INDEX EBOPS_DQ_MAIN_BUS_NO ON &&VENDOR_SCHEMA..&&INVOICE_TABLE
    (CAST(BUS_NO AS VARCHAR2(50)));
-- a bill's items: DQ06, DQ08, DQ15 (items)
CREATE INDEX EBOPS_DQ_DETAIL_MAIN_ID ON &&VENDOR_SCHEMA..&&ITEM_TABLE
    (CAST(MAIN_ID AS NUMBER(19)));
-- the reconciliation's period and a settlement by its business number: DQ19
CREATE INDEX EBOPS_DQ_SETTLE_TIME ON &&VENDOR_SCHEMA..&&SETTLE_TABLE
    (CAST(SETTLE_DATETIME AS TIMESTAMP));
CREATE INDEX EBOPS_DQ_SETTLE_NO ON &&VENDOR_SCHEMA..&&SETTLE_TABLE
    (CAST(&&COL_SETTLE_NO AS VARCHAR2(50)));
-- a number segment by its bill code: DQ21's overlap test pairs segments of one code
CREATE INDEX EBOPS_DQ_STOCK_CODE ON &&VENDOR_SCHEMA..&&STOCK_TABLE
    (CAST(BILL_BATCH_CODE AS CHAR(8)));

WHENEVER SQLERROR EXIT SQL.SQLCODE
