"""Machine-readable reason codes of the result records (CheckResult.code), in one place.

`reason` is the engineer's Chinese sentence and may be reworded at any time; `code` is stable
snake_case that reports, alerts, result.json readers and tests can rely on (as pgBackRest's verify
reports `checksum_mismatch`, `file_missing` …). The status says how bad, the code says what: one
code can come with WARN or FAIL (disk_usage_high at 85 % and at 95 %). An OK record carries "ok".

ERROR records built by `error_result` get their code from the exception (`error_codes.code_for_exception`),
so "the host is unreachable" reads the same in every check.

| code | meaning |
|---|---|
| ok | nothing to report |
| **could not measure (ERROR, any check)** | |
| host_unreachable | the server did not answer on its SSH port, or the connection was lost |
| auth_refused | the SSH login was refused (key not accepted, unreadable or missing key) |
| host_key_rejected | the server's host key is not the one in known_hosts (changed, unknown, no file) |
| command_timeout | a command on a server did not finish within its timeout |
| command_failed | a command on a server failed (non-zero exit, unparsable output) |
| database_unreachable | the database refused or did not answer the connection |
| query_timeout | a query was cancelled by its statement or lock timeout (e.g. blocked by a lock) |
| database_error | any other database error |
| file_missing | a file the check reads does not exist on the server |
| file_unreadable | a file the check reads exists but cannot be read |
| config_invalid | the site file or an override file lacks or misstates something the check needs |
| check_error | anything else that stopped the measurement (the reason names it) |
| **not checked (SKIPPED)** | |
| not_configured | the site file does not configure this item |
| plan_only | plan mode, or no recorded approval: the command was shown, not run |
| approval_missing | the site file records no approval for the command (so it only planned) |
| skipped_by_request | the run's parameters asked to skip this step |
| earlier_step_failed | a step this one needs did not succeed |
| no_data | nothing in the period to check |
| **server migration (服务器迁移)** | |
| migration_version_mismatch | the migration target's database is older than the source's, or not the same family |
| migration_space_low | the target's free space is below the configured multiple of the data size |
| migration_port_unreachable | a port the migration needs (database, SSH) does not accept connections |
| migration_clock_skew | a server's clock differs from the worker's by more than allowed |
| migration_target_not_empty | the target database already holds tables, views or sequences (Oracle Data Pump: or the canonical views' owner) |
| migration_tablespace_missing | a tablespace the source's objects live in does not exist on the target |
| migration_no_verified_backup | no PASSED backup verification of the source within the allowed days |
| migration_app_unhealthy | the application's health URL did not answer 2xx |
| migration_app_command_failed | the application's stop/start/status command failed |
| migration_bills_arriving | new bills still arrived after the application was stopped |
| migration_transfer_failed | the dump, its copy or its restore failed, or the copy's SHA-256 differs |
| migration_step_failed | a configured cut-over or rollback step failed |
| migration_wrong_datasource | the application answers from a database other than the expected one |
| migration_downtime_over | the measured downtime exceeded the plan's estimate |
| migration_test_bill_failed | the smoke test's test bill could not be issued, red-flushed or read back from the target |
| migration_invalid_objects | Oracle: objects of the vendor's schema invalid on the target after the restore that were valid on the source |
| migration_not_open | Oracle: the target database is not OPEN READ WRITE after the restore |
| migration_account_missing | Oracle Data Pump: an account the checks read the target through (verification, read-only) does not exist there |
| approval_refused | an approval does not hold: self-approval, another plan's, or expired |
| phase_refused | a phase cut off mid-way that may not run again, or one that already ended |
| **inspection findings** | |
| disk_usage_high | a mount's usage is at or above its threshold |
| tablespace_usage_high | a tablespace's usage is at or above its threshold |
| tablespace_limit_unknown | a tablespace's limit cannot be known (no database server, location not visible) |
| backup_log_empty | the backup log holds no finished backup |
| backup_job_failed | the newest backup job did not end SUCCESS |
| backup_none_successful | the backup log holds no successful backup |
| backup_too_old | the newest successful backup is older than allowed |
| backup_file_missing | the backup file the log names is not in the backup folder |
| backup_size_mismatch | the backup file's size differs from the size the log gives |
| backup_not_logged | the backup command ran but the log gained no finished run |
| backup_space_high | the backup folder's filesystem is at or above its threshold |
| log_new_errors | new error lines in a log |
| log_critical_errors | new lines matching a critical pattern |
| log_read_skipped | more was added than one read may take: part of the log went unchecked |
| http_unreachable | a health URL could not be called (refused, timeout, TLS) |
| http_status_not_2xx | a health URL answered with a status other than 2xx |
| interface_no_calls | no call of an interface in the window |
| interface_success_low | an interface's success rate is below its threshold |
| interface_latency_high | an interface's mean latency is above its threshold |
| finance_backlog | bills not uploaded to / not archived by the finance platform in time |
| stock_no_segment | an active issuing point has no active number segment |
| stock_exhausted | an active segment has no number left |
| stock_below_warning | remaining numbers below the issuing point's warning level |
| stock_days_low | remaining numbers last fewer days than the threshold |
| **interface watch (day bundles)** | |
| availability_low | an e-bill function answered fewer of the day's probes than the site's availability floor (MZ 一.18: 99 %) |
| watch_coverage_low | the watch probed a day less often than planned (it was stopped or could not run) |
| cert_expired | a certificate has expired |
| cert_not_yet_valid | a certificate is not valid yet |
| cert_expiring | a certificate expires within the WARN or FAIL threshold |
| calendar_template_only | a year in the window has only a template calendar (the State Council's notice is not entered) |
| calendar_year_missing | a year in the window has no holiday data at all |
| roster_gap | a day of the holiday has nobody on duty (pre-holiday check) |
| **backup-restore verification** | |
| backup_not_found | no backup file found (or the given path does not exist) |
| dump_failed | taking the backup in a snapshot failed |
| backup_unreadable | the archive's table of contents cannot be read |
| backup_corrupt | the table of contents reads but a full read of the archive fails |
| rman_job_failed | the RMAN job status is not COMPLETED (or RMAN validation reports corruption) |
| restore_target_refused | the restore target resolves to production (or is otherwise unsafe): refused |
| restore_failed | the restore tool exited with an error |
| objects_differ | the restored copy's objects differ from production's |
| row_count_mismatch | a table's row count differs from production's as of the backup |
| rows_differ | 逐行比对: keys missing on the target, extra there, or rows whose canonical content differs |
| rows_incomparable | 逐行比对: a table could not be compared row by row (columns or key differ, a side unreadable or out of key order) |
| rows_count_only | 逐行比对 across engines: a table over verify_rows_max_table_rows is covered by its row count only (WARN) |
| checksum_mismatch | a table's content fingerprint differs from production's |
| table_missing | a table exists on one side only |
| source_inventory_empty | production's object list is empty: nothing to compare against (schema name or grants?) |
| fingerprints_incomparable | the two sides' fingerprints were taken with different settings |
| sample_mismatch | sampled bills differ field by field |
| restored_empty | the restored copy holds no bills |
| rpo_exceeded | the data-loss window (RPO) is above the limit |
| rto_exceeded | the restore time (RTO) is above the limit |
| scratch_kept | the scratch copy was kept for investigation (keep_on_failure) |
| quality_rules_broken | data-quality rules cannot run on the restored copy |
| **data quality (票据数据质量)** | |
| rule_violated | rows break the rule (FAIL for error rules, WARN for warning rules) |
| rule_error | the rule could not run |
| **year-end (技术年结) and other approved plans** | |
| approval_pending | the plan is stored and waits for a second person's approval |
| already_done | the step's change is already in place (an earlier run did it): nothing was run |
| proof_mismatch | a compacted partition's row count or content fingerprint changed |
| verification_missing | no PASSED backup verification of the site within the allowed age |
| verification_chain_broken | the backup verification's evidence does not verify (chain, signature) |
| year_end_late | the year-end for next year is executed after 31 December |
| **evidence chain (every duty's run, from tasks/evidence/chain.py; `ebops evidence verify` has its own codes)** | |
| unsigned | the manifest was stored unsigned (no signing key, or one that does not match the site's public key) |
| chain_head_mismatch | the store's newest manifest differs from this worker's chain head (rewritten, or a bundle that does not follow it) |
| bundle_removed | this worker's newest bundle is gone from the store |
| claim_mismatch | the store's sequence claim and the manifest it names disagree |
| signature_invalid | the store's newest manifest does not verify with the site's keys |
| sequence_taken | another bundle holds this run's sequence: the chain forked |
| lock_timeout | another run held the chain's lock too long; written without it (the store's claim still applies) |
| **approvals (QH 9.1.2 多人负责制度, tasks/approvals/gate.py)** | |
| approver_is_requester | the approver is the engineer who requested the plan or the run: a second person must approve |
| approver_not_listed | the approver is not in the site's `approvers:` list |
| approval_expired | the approval of the plan has expired |
| plan_changed | the plan re-rendered at execution time has another SHA-256 than the approved one: re-plan |
| plan_not_found | the PLAN_KEY names no stored plan (or one whose bytes differ from its manifest) |
| confirm_code_sent | a confirmation code was sent to the site's group: the approver must type it |
| confirm_code_wrong | the confirmation code typed is wrong or expired |
| confirm_code_locked | too many wrong confirmation codes were typed for the plan: the codes sent are void, a new one must be sent |
| approval_denied | the approver denied the plan, or nobody answered the run's approval form in time |
| step_failed | a runbook step failed: the runbook stopped there (a later run resumes at it) |
| **service report** | |
| duty_missing | a duty due in the period has no evidence bundle |
| duty_late | a duty due in the period was done after its deadline |
| availability_below_goal | an e-bill function's availability is below the goal (MZ 一.18: 99 %) |
| no_watch_data | no bundle of the interface watch in the period: availability is not measured |
| faults_open | a fault of the period is not restored at the report's as-of time |
| **year-end (技术年结)** | |
| tool_missing | a tool the measurement needs is not on the host (SKIPPED: nothing was measured) |
| not_applicable | the measurement does not apply to what was found (e.g. no fragmentation tool for the filesystem type) |
| fragmented | files are more fragmented than the threshold |
| number_gap | numbers of a segment carry neither a bill nor a void record (closing list) |
"""
from __future__ import annotations

from enum import Enum


class Code(str, Enum):
    OK = "ok"
    # could not measure
    HOST_UNREACHABLE = "host_unreachable"
    AUTH_REFUSED = "auth_refused"
    HOST_KEY_REJECTED = "host_key_rejected"
    COMMAND_TIMEOUT = "command_timeout"
    COMMAND_FAILED = "command_failed"
    DATABASE_UNREACHABLE = "database_unreachable"
    QUERY_TIMEOUT = "query_timeout"
    DATABASE_ERROR = "database_error"
    FILE_MISSING = "file_missing"
    FILE_UNREADABLE = "file_unreadable"
    CONFIG_INVALID = "config_invalid"
    CHECK_ERROR = "check_error"
    # not checked
    NOT_CONFIGURED = "not_configured"
    PLAN_ONLY = "plan_only"
    APPROVAL_MISSING = "approval_missing"
    SKIPPED_BY_REQUEST = "skipped_by_request"
    EARLIER_STEP_FAILED = "earlier_step_failed"
    NO_DATA = "no_data"
    # inspection findings
    DISK_USAGE_HIGH = "disk_usage_high"
    TABLESPACE_USAGE_HIGH = "tablespace_usage_high"
    TABLESPACE_LIMIT_UNKNOWN = "tablespace_limit_unknown"
    BACKUP_LOG_EMPTY = "backup_log_empty"
    BACKUP_JOB_FAILED = "backup_job_failed"
    BACKUP_NONE_SUCCESSFUL = "backup_none_successful"
    BACKUP_TOO_OLD = "backup_too_old"
    BACKUP_FILE_MISSING = "backup_file_missing"
    BACKUP_SIZE_MISMATCH = "backup_size_mismatch"
    BACKUP_NOT_LOGGED = "backup_not_logged"
    BACKUP_SPACE_HIGH = "backup_space_high"
    LOG_NEW_ERRORS = "log_new_errors"
    LOG_CRITICAL_ERRORS = "log_critical_errors"
    LOG_READ_SKIPPED = "log_read_skipped"
    HTTP_UNREACHABLE = "http_unreachable"
    HTTP_STATUS_NOT_2XX = "http_status_not_2xx"
    INTERFACE_NO_CALLS = "interface_no_calls"
    INTERFACE_SUCCESS_LOW = "interface_success_low"
    INTERFACE_LATENCY_HIGH = "interface_latency_high"
    FINANCE_BACKLOG = "finance_backlog"
    STOCK_NO_SEGMENT = "stock_no_segment"
    STOCK_EXHAUSTED = "stock_exhausted"
    STOCK_BELOW_WARNING = "stock_below_warning"
    STOCK_DAYS_LOW = "stock_days_low"
    AVAILABILITY_LOW = "availability_low"
    WATCH_COVERAGE_LOW = "watch_coverage_low"
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    CERT_EXPIRING = "cert_expiring"
    CALENDAR_TEMPLATE_ONLY = "calendar_template_only"
    CALENDAR_YEAR_MISSING = "calendar_year_missing"
    ROSTER_GAP = "roster_gap"
    # backup-restore verification
    BACKUP_NOT_FOUND = "backup_not_found"
    DUMP_FAILED = "dump_failed"
    BACKUP_UNREADABLE = "backup_unreadable"
    BACKUP_CORRUPT = "backup_corrupt"
    RMAN_JOB_FAILED = "rman_job_failed"
    RESTORE_TARGET_REFUSED = "restore_target_refused"
    RESTORE_FAILED = "restore_failed"
    OBJECTS_DIFFER = "objects_differ"
    ROW_COUNT_MISMATCH = "row_count_mismatch"
    ROWS_DIFFER = "rows_differ"
    ROWS_INCOMPARABLE = "rows_incomparable"
    ROWS_COUNT_ONLY = "rows_count_only"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    TABLE_MISSING = "table_missing"
    SOURCE_INVENTORY_EMPTY = "source_inventory_empty"
    FINGERPRINTS_INCOMPARABLE = "fingerprints_incomparable"
    SAMPLE_MISMATCH = "sample_mismatch"
    RESTORED_EMPTY = "restored_empty"
    RPO_EXCEEDED = "rpo_exceeded"
    RTO_EXCEEDED = "rto_exceeded"
    SCRATCH_KEPT = "scratch_kept"
    QUALITY_RULES_BROKEN = "quality_rules_broken"
    # server migration
    MIGRATION_VERSION_MISMATCH = "migration_version_mismatch"
    MIGRATION_SPACE_LOW = "migration_space_low"
    MIGRATION_PORT_UNREACHABLE = "migration_port_unreachable"
    MIGRATION_CLOCK_SKEW = "migration_clock_skew"
    MIGRATION_TARGET_NOT_EMPTY = "migration_target_not_empty"
    MIGRATION_TABLESPACE_MISSING = "migration_tablespace_missing"
    MIGRATION_NO_VERIFIED_BACKUP = "migration_no_verified_backup"
    MIGRATION_APP_UNHEALTHY = "migration_app_unhealthy"
    MIGRATION_APP_COMMAND_FAILED = "migration_app_command_failed"
    MIGRATION_BILLS_ARRIVING = "migration_bills_arriving"
    MIGRATION_TRANSFER_FAILED = "migration_transfer_failed"
    MIGRATION_STEP_FAILED = "migration_step_failed"
    MIGRATION_WRONG_DATASOURCE = "migration_wrong_datasource"
    MIGRATION_DOWNTIME_OVER = "migration_downtime_over"
    MIGRATION_TEST_BILL_FAILED = "migration_test_bill_failed"
    MIGRATION_INVALID_OBJECTS = "migration_invalid_objects"
    MIGRATION_NOT_OPEN = "migration_not_open"
    MIGRATION_ACCOUNT_MISSING = "migration_account_missing"
    APPROVAL_REFUSED = "approval_refused"
    PHASE_REFUSED = "phase_refused"
    # data quality
    RULE_VIOLATED = "rule_violated"
    RULE_ERROR = "rule_error"
    # year-end and other approved plans
    APPROVAL_PENDING = "approval_pending"
    ALREADY_DONE = "already_done"
    PROOF_MISMATCH = "proof_mismatch"
    VERIFICATION_MISSING = "verification_missing"
    VERIFICATION_CHAIN_BROKEN = "verification_chain_broken"
    YEAR_END_LATE = "year_end_late"
    # evidence chain
    UNSIGNED = "unsigned"
    CHAIN_HEAD_MISMATCH = "chain_head_mismatch"
    BUNDLE_REMOVED = "bundle_removed"
    CLAIM_MISMATCH = "claim_mismatch"
    SIGNATURE_INVALID = "signature_invalid"
    SEQUENCE_TAKEN = "sequence_taken"
    LOCK_TIMEOUT = "lock_timeout"
    # approvals
    APPROVER_IS_REQUESTER = "approver_is_requester"
    APPROVER_NOT_LISTED = "approver_not_listed"
    APPROVAL_EXPIRED = "approval_expired"
    PLAN_CHANGED = "plan_changed"
    PLAN_NOT_FOUND = "plan_not_found"
    CONFIRM_CODE_SENT = "confirm_code_sent"
    CONFIRM_CODE_WRONG = "confirm_code_wrong"
    CONFIRM_CODE_LOCKED = "confirm_code_locked"
    APPROVAL_DENIED = "approval_denied"
    STEP_FAILED = "step_failed"
    # service report
    DUTY_MISSING = "duty_missing"
    DUTY_LATE = "duty_late"
    AVAILABILITY_BELOW_GOAL = "availability_below_goal"
    NO_WATCH_DATA = "no_watch_data"
    FAULTS_OPEN = "faults_open"
    # year-end
    TOOL_MISSING = "tool_missing"
    NOT_APPLICABLE = "not_applicable"
    FRAGMENTED = "fragmented"
    NUMBER_GAP = "number_gap"
