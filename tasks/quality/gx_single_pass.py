"""One query per rule instead of two: a GX expectation and metric that read the failing keys once.

GX's UnexpectedRowsExpectation asks for two metrics, `SELECT COUNT(*) FROM (<rule>)` and the rule's
first 200 rows, so every rule query runs twice; the count is then read from the rows again by
the flow to list every key. A rule query returns only failing business keys (few rows, no payer
data), so fetching all of them once gives both the count and the list: `ExpectEbillRuleHolds` is
that expectation. It is an UnexpectedRowsExpectation (same query, same result shape, same Data
Docs rendering); only the metric it depends on differs. The suites in expectations/ keep the
standard type; the runner builds this subclass from them.
"""
from __future__ import annotations

from string import Formatter
from typing import Any, ClassVar, Tuple, Union

from great_expectations.compatibility import pydantic
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import ExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metrics.query_table.query_table import QueryTable


class EbillRuleRows(QueryTable):
    """Every row of the rule's query (its failing keys), in one execution."""
    metric_name = "ebill_rule_rows.table"
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, execution_engine: SqlAlchemyExecutionEngine, metric_domain_kwargs: dict,
                    metric_value_kwargs: dict, metrics: dict[str, Any], runtime_configuration: dict) -> list[dict]:
        batch_selectable, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs,
                                                                     domain_type=MetricDomainTypes.TABLE)
        query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
            query=cls._get_query_from_metric_value_kwargs(metric_value_kwargs),
            batch_selectable=batch_selectable, execution_engine=execution_engine)
        return cls._get_sqlalchemy_records_from_substituted_batch_subquery(
            substituted_batch_subquery=query, execution_engine=execution_engine, fetch_all=True)


class ExpectEbillRuleHolds(UnexpectedRowsExpectation):
    """No row breaks the rule: the rule's query (failing business keys) returns nothing."""
    metric_dependencies: ClassVar[Tuple[str, ...]] = ("ebill_rule_rows.table",)

    @pydantic.validator("unexpected_rows_query")
    def _validate_query(cls, query):
        # GX's own check prints "should contain {batch}" for each rule, into the flow's log: these
        # rules name their relations themselves (they span relations and look past the period's
        # edges). The brace check is kept: an unpaired brace fails here, as it does in GX.
        if isinstance(query, str):
            list(Formatter().parse(query))
            return query.rstrip("; \t\r\n\v\f")
        return query

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: ExecutionEngine | None = None) -> Union[ExpectationValidationResult, dict]:
        rows = metrics["ebill_rule_rows.table"]
        return {"success": not rows, "result": {"observed_value": len(rows), "details": {"unexpected_rows": rows}}}


class EbillScanRows(EbillRuleRows):
    """Every row of a shared scan (tasks/quality/shared_scan.py): keys plus one flag per rule. The
    same query in several expectations of a suite is the same metric, which GX computes once."""
    metric_name = "ebill_scan_rows.table"
    value_keys = ("scan_query",)
    query_param_name: ClassVar[str] = "scan_query"


class ExpectEbillRuleHoldsInScan(ExpectEbillRuleHolds):
    """ExpectEbillRuleHolds answered from a scan shared with other rules: the failing keys are the
    distinct keys of the scan's rows whose flag `scan_flag` is 1. `unexpected_rows_query` stays the
    rule's own query, as shown in Data Docs."""
    scan_query: str
    scan_flag: str
    metric_dependencies: ClassVar[Tuple[str, ...]] = ("ebill_scan_rows.table",)
    success_keys: ClassVar[Tuple[str, ...]] = ("unexpected_rows_query", "scan_query")

    @pydantic.validator("scan_query")
    def _validate_scan(cls, query):
        list(Formatter().parse(query))
        return query

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: ExecutionEngine | None = None) -> Union[ExpectationValidationResult, dict]:
        seen, rows = set(), []
        for row in metrics["ebill_scan_rows.table"]:
            if int(row.get(self.scan_flag) or 0) != 1:
                continue
            keys = {k: v for k, v in row.items() if not k.startswith("ebops_f")}
            ident = tuple(keys.items())
            if ident not in seen:  # the rule's own query says SELECT DISTINCT
                seen.add(ident)
                rows.append(keys)
        return {"success": not rows, "result": {"observed_value": len(rows), "details": {"unexpected_rows": rows}}}
