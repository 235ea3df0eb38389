-- ebill-ops: the seven canonical e-bill relations as read-only views (PostgreSQL family:
-- PostgreSQL, openGauss, KingbaseES). Run by the site's DBA, as the vendor schema's owner or a
-- superuser, in the e-bill database:
--
--   psql "host=... dbname=ebill user=postgres" -f 01_canonical_views.sql \
--        -v vendor_schema=ebill -v canon_schema=ebill_canon
--
-- Columns, their order and their types are fixed by docs/ebill-reference-schema.md: every check
-- reads only these names. The SELECT lists below are written for the widely used vendor layout
-- (T_EBILL_MAIN, T_EBILL_DETAIL, ...); where a site's tables or columns are named differently,
-- set the table variables below (-v invoice_table=...) and edit the expression left of `AS`,
-- never the name right of it. Re-running the script replaces the views (idempotent).

\set ON_ERROR_STOP on
\if :{?vendor_schema}  \else \set vendor_schema ebill        \endif
\if :{?canon_schema}   \else \set canon_schema ebill_canon   \endif
\if :{?place_table}    \else \set place_table t_bill_place   \endif
\if :{?invoice_table}  \else \set invoice_table t_ebill_main \endif
\if :{?item_table}     \else \set item_table t_ebill_detail  \endif
\if :{?settle_table}   \else \set settle_table t_his_settle  \endif
\if :{?log_table}      \else \set log_table t_interface_log  \endif
\if :{?stock_table}    \else \set stock_table t_bill_stock   \endif
\if :{?void_table}     \else \set void_table t_bill_void     \endif

BEGIN;

CREATE SCHEMA IF NOT EXISTS :"canon_schema";
COMMENT ON SCHEMA :"canon_schema" IS 'ebill-ops canonical views, read-only (see config/sql/README.md)';

-- 开票点
CREATE OR REPLACE VIEW :"canon_schema".ebill_place AS
SELECT
    p.place_code::varchar(50)                      AS place_code,
    p.place_name::varchar(100)                     AS place_name,
    (CASE p.place_type WHEN '1' THEN 'outpatient' WHEN '2' THEN 'inpatient' WHEN '3' THEN 'registration'
                       WHEN '4' THEN 'checkup' WHEN '5' THEN 'self_service' ELSE p.place_type END)::varchar(20) AS place_type,
    (p.is_valid = 'Y')::boolean                    AS active
FROM :"vendor_schema".:"place_table" p;

-- 票据主表 (blue and red bills)
CREATE OR REPLACE VIEW :"canon_schema".ebill_invoice AS
SELECT
    m.id::bigint                                   AS bill_id,
    m.bill_batch_code::char(8)                     AS bill_code,
    m.bill_number::char(10)                        AS bill_no,
    m.random_code::char(6)                         AS check_code,
    (CASE m.red_flag WHEN '1' THEN 'R' ELSE 'B' END)::char(1) AS bill_kind,
    m.rel_bill_batch_code::char(8)                 AS orig_bill_code,
    m.rel_bill_number::char(10)                    AS orig_bill_no,
    m.bus_no::varchar(50)                          AS bus_no,
    m.bus_type::char(2)                            AS bus_type,
    m.bus_datetime::timestamp                      AS bus_time,
    m.ivc_datetime::timestamp                      AS issue_time,
    m.place_code::varchar(50)                      AS place_code,
    m.payer::varchar(100)                          AS payer_name,
    m.payer_type::char(1)                          AS payer_type,
    m.payer_id_card::varchar(18)                   AS id_card_no,
    m.payer_tel::varchar(11)                       AS tel,
    m.total_amt::numeric(14,2)                     AS total_amt,
    m.fund_pay::numeric(14,2)                      AS fund_pay,
    m.other_fund_pay::numeric(14,2)                AS other_fund_pay,
    m.account_pay::numeric(14,2)                   AS account_pay,
    m.own_pay::numeric(14,2)                       AS self_cash_pay,
    m.med_care_type_code::char(2)                  AS med_care_type,
    m.patient_id::varchar(50)                      AS patient_id,
    m.outpatient_no::varchar(30)                   AS visit_no,
    m.hospital_no::varchar(30)                     AS hospital_no,
    m.in_hospital_date::date                       AS in_date,
    m.out_hospital_date::date                      AS out_date,
    (CASE m.bill_state WHEN '2' THEN 'FLUSHED' ELSE 'ISSUED' END)::varchar(10) AS status,
    m.sign_flag::char(1)                           AS sign_status,
    m.upload_flag::char(1)                         AS upload_status,
    m.upload_datetime::timestamp                   AS upload_time,
    m.archive_flag::char(1)                        AS archive_status,
    m.notice_flag::char(1)                         AS notice_status,
    m.notice_datetime::timestamp                   AS notice_time
FROM :"vendor_schema".:"invoice_table" m;

-- 票据明细
CREATE OR REPLACE VIEW :"canon_schema".ebill_invoice_item AS
SELECT
    d.main_id::bigint                              AS bill_id,
    d.sort_no::integer                             AS sort_no,
    d.charge_code::char(2)                         AS charge_code,
    d.item_code::varchar                           AS item_code,
    d.item_name::varchar                           AS item_name,
    d.unit::varchar(20)                            AS unit,
    d.std::numeric(14,4)                           AS std,
    d.number::numeric(14,2)                        AS qty,
    d.amt::numeric(14,2)                           AS amt,
    d.med_ins_type::char(1)                        AS med_ins_class
FROM :"vendor_schema".:"item_table" d;

-- HIS 结算
CREATE OR REPLACE VIEW :"canon_schema".his_settlement AS
SELECT
    s.settle_id::bigint                            AS settle_id,
    s.his_serial_no::varchar(50)                   AS bus_no,
    s.visit_type::char(1)                          AS visit_type,
    s.pat_id::varchar(50)                          AS patient_id,
    s.settle_datetime::timestamp                   AS settle_time,
    s.place_code::varchar(50)                      AS place_code,
    s.settle_amt::numeric(14,2)                    AS total_amt,
    s.is_refund::char(1)                           AS refund_flag,
    s.ori_his_serial_no::varchar(50)               AS orig_bus_no
FROM :"vendor_schema".:"settle_table" s;

-- 接口调用日志
CREATE OR REPLACE VIEW :"canon_schema".ebill_call_log AS
SELECT
    l.log_id::bigint                               AS log_id,
    (CASE l.interface_type WHEN 'HIS' THEN 'his_api' WHEN 'SIGN' THEN 'sign_server'
                           WHEN 'FINANCE' THEN 'finance' WHEN 'DELIVERY' THEN 'delivery'
                           ELSE lower(l.interface_type) END)::varchar(20) AS target,
    l.method_name::varchar(50)                     AS method,
    l.bus_no::varchar(50)                          AS bus_no,
    l.place_code::varchar(50)                      AS place_code,
    l.req_datetime::timestamp                      AS req_time,
    l.cost_ms::integer                             AS elapsed_ms,
    l.result_code::varchar(10)                     AS result_code,
    l.result_msg::varchar(500)                     AS message
FROM :"vendor_schema".:"log_table" l;

-- 票据库存
CREATE OR REPLACE VIEW :"canon_schema".ebill_stock AS
SELECT
    k.id::bigint                                   AS stock_id,
    k.place_code::varchar(50)                      AS place_code,
    k.bill_batch_code::char(8)                     AS bill_code,
    k.start_no::char(10)                           AS start_no,
    k.end_no::char(10)                             AS end_no,
    k.cur_no::char(10)                             AS current_no,
    k.warn_num::integer                            AS warn_sheets,
    (CASE k.stock_state WHEN '1' THEN 'ACTIVE' WHEN '2' THEN 'USED_UP' WHEN '3' THEN 'VOID'
                        ELSE k.stock_state END)::varchar(10) AS status
FROM :"vendor_schema".:"stock_table" k;

-- 号码作废记录 (numbers taken from a segment but not issued: printer jams, failed issues, write-offs)
CREATE OR REPLACE VIEW :"canon_schema".ebill_void AS
SELECT
    v.bill_batch_code::char(8)                     AS bill_code,
    v.bill_number::char(10)                        AS bill_no,
    v.place_code::varchar(50)                      AS place_code,
    v.void_datetime::timestamp                     AS void_time,
    v.void_reason::varchar(200)                    AS reason
FROM :"vendor_schema".:"void_table" v;

COMMIT;
