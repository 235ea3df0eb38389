-- The sandbox hospital's e-bill database as a vendor lays it out (schema `ebill`, owner ebill_app).
--
-- Names, codes and column spellings are the vendor's own, not the canonical ones of
-- docs/ebill-reference-schema.md: config/sql/postgresql/01_canonical_views.sql maps them, exactly as
-- a DBA does at a real site. Timestamps are naive local time (Asia/Shanghai), as HIS systems store them.
--
-- The two bill tables are partitioned by year on the issue time; sandbox/postgres.py creates one
-- partition per year in that year's tablespace (ts_ebill_<year>), the way year-end DDL adds them.

CREATE SCHEMA IF NOT EXISTS ebill AUTHORIZATION ebill_app;
SET search_path = ebill;

-- 开票点
CREATE TABLE t_bill_place (
    place_code      varchar(50)  PRIMARY KEY,
    place_name      varchar(100) NOT NULL,
    place_type      varchar(2)   NOT NULL,   -- 1 门诊 2 住院 3 挂号 4 体检 5 自助机
    dept_name       varchar(100),
    is_valid        char(1)      NOT NULL DEFAULT 'Y',  -- Y/N
    create_time     timestamp    NOT NULL DEFAULT localtimestamp
);

-- 票据主表: blue and red bills
CREATE TABLE t_ebill_main (
    id                  bigint        NOT NULL,
    bill_batch_code     varchar(8)    NOT NULL,  -- 票据代码
    bill_number         varchar(10)   NOT NULL,  -- 票据号码
    random_code         varchar(6)    NOT NULL,  -- 校验码
    red_flag            char(1)       NOT NULL,  -- 0 蓝票, 1 红票
    rel_bill_batch_code varchar(8),              -- 红票: 原票据代码
    rel_bill_number     varchar(10),             -- 红票: 原票据号码
    bus_no              varchar(50)   NOT NULL,  -- HIS 业务流水号
    bus_type            varchar(2)    NOT NULL,
    bus_datetime        timestamp     NOT NULL,
    ivc_datetime        timestamp     NOT NULL,  -- 开票时间 (partition key)
    place_code          varchar(50)   NOT NULL,
    payer               varchar(100)  NOT NULL,
    payer_type          char(1)       NOT NULL,
    payer_id_card       varchar(18),
    payer_tel           varchar(11),
    total_amt           numeric(14,2) NOT NULL,
    fund_pay            numeric(14,2) NOT NULL DEFAULT 0,
    other_fund_pay      numeric(14,2) NOT NULL DEFAULT 0,
    account_pay         numeric(14,2) NOT NULL DEFAULT 0,
    own_pay             numeric(14,2) NOT NULL DEFAULT 0,
    med_care_type_code  varchar(2)    NOT NULL,
    patient_id          varchar(50),
    outpatient_no       varchar(30),
    hospital_no         varchar(30),
    in_hospital_date    date,
    out_hospital_date   date,
    bill_state          char(1)       NOT NULL,  -- 1 正常, 2 已冲红
    sign_flag           char(1)       NOT NULL,  -- 1 已签章
    upload_flag         char(1)       NOT NULL,  -- 0 待上传, 1 已监制, 2 上传失败
    upload_datetime     timestamp,
    archive_flag        char(1)       NOT NULL,
    notice_flag         char(1)       NOT NULL,  -- 0 未发送 1 已发送 2 发送失败 9 无联系方式
    notice_datetime     timestamp,
    create_time         timestamp     NOT NULL DEFAULT localtimestamp,
    PRIMARY KEY (id, ivc_datetime)
) PARTITION BY RANGE (ivc_datetime);

-- 票据明细; carries the bill's issue time so that it is partitioned like its bill
CREATE TABLE t_ebill_detail (
    main_id         bigint        NOT NULL,
    ivc_datetime    timestamp     NOT NULL,
    sort_no         integer       NOT NULL,
    charge_code     varchar(2)    NOT NULL,  -- 收费项目类别
    item_code       varchar(50)   NOT NULL,
    item_name       varchar(200)  NOT NULL,
    unit            varchar(20),
    std             numeric(14,4) NOT NULL,
    number          numeric(14,2) NOT NULL,
    amt             numeric(14,2) NOT NULL,
    med_ins_type    char(1)       NOT NULL,  -- 1 甲类 2 乙类 3 自费
    PRIMARY KEY (main_id, sort_no, ivc_datetime)
) PARTITION BY RANGE (ivc_datetime);

-- HIS 结算 (written by the HIS interface before a bill is requested)
CREATE TABLE t_his_settle (
    settle_id          bigint        PRIMARY KEY,
    his_serial_no      varchar(50)   NOT NULL,
    visit_type         char(1)       NOT NULL,  -- O I E C R
    pat_id             varchar(50),
    settle_datetime    timestamp     NOT NULL,
    place_code         varchar(50)   NOT NULL,
    settle_amt         numeric(14,2) NOT NULL,
    is_refund          char(1)       NOT NULL,  -- 0/1
    ori_his_serial_no  varchar(50)
);

-- 接口调用日志
CREATE TABLE t_interface_log (
    log_id          bigint        PRIMARY KEY,
    interface_type  varchar(20)   NOT NULL,  -- HIS, SIGN, FINANCE, DELIVERY
    method_name     varchar(50)   NOT NULL,
    bus_no          varchar(50),
    place_code      varchar(50),
    req_datetime    timestamp     NOT NULL,
    cost_ms         integer       NOT NULL,
    result_code     varchar(10)   NOT NULL,
    result_msg      varchar(500)
);

-- 票据库存 (number segments per issuing point)
CREATE TABLE t_bill_stock (
    id               bigint       PRIMARY KEY,
    place_code       varchar(50)  NOT NULL,
    bill_batch_code  varchar(8)   NOT NULL,
    start_no         varchar(10)  NOT NULL,
    end_no           varchar(10)  NOT NULL,
    cur_no           varchar(10)  NOT NULL,  -- next number to use
    warn_num         integer      NOT NULL,
    stock_state      char(1)      NOT NULL,  -- 1 在用 2 用完 3 作废
    receive_date     date
);

-- 号码作废 (a number taken from a segment and not issued: the platform records why)
CREATE TABLE t_bill_void (
    id               bigint       PRIMARY KEY,
    bill_batch_code  varchar(8)   NOT NULL,
    bill_number      varchar(10)  NOT NULL,
    place_code       varchar(50)  NOT NULL,
    void_datetime    timestamp    NOT NULL,
    void_reason      varchar(200)
);

-- == indexes (created after the bulk load: building them once is faster than maintaining them per row) ==
CREATE INDEX IF NOT EXISTS idx_ebill_main_code_no ON t_ebill_main (bill_batch_code, bill_number);
CREATE INDEX IF NOT EXISTS idx_ebill_main_bus_no ON t_ebill_main (bus_no);
CREATE INDEX IF NOT EXISTS idx_his_settle_serial ON t_his_settle (his_serial_no);
CREATE INDEX IF NOT EXISTS idx_interface_log_req ON t_interface_log (req_datetime);
