"""The Great Expectations side of the quality gate: imported only when a job is validated
(importing GX costs seconds), then kept for the life of the process.

One ephemeral context, one pandas datasource, one dataframe asset and batch definition
per table name, and one ``ExpectationSuite`` per distinct (table, expectations) are built
the first time they are needed and reused for every later job, so a job pays only for
its batches and the expectations themselves. DESIGN.md: GX 1.x's SQL datasource fails on
DuckDB, so frames are validated as pandas frames, with analytics off.

A table's declarations (``Expect``, ``ingest.probes.base``) become few GX expectations,
since GX spends 1-2 ms of bookkeeping per metric an expectation needs, whatever the
frame's size (a built-in map expectation needs about six: 5-6 ms; a job of three tables
with a dozen checks each cost 70 ms that way):

- the key (``unique``): ``expect_compound_key_to_be_unique``, a custom batch expectation on
  one metric (the number of rows repeating an earlier row's key);
- every ``not_null`` column: ``expect_columns_to_not_be_null`` (custom; one metric: the
  columns holding a NULL);
- every ``between``: ``expect_columns_values_to_be_between`` (custom; one metric: the
  columns with a non-NULL value outside its [lo, hi]). NULLs are never range-checked: a
  column the probe leaves NULL by design passes;
- ``greater``: GX's ``expect_column_pair_values_a_to_be_greater_than_b`` (rows with a NULL
  skipped); ``pairs_in``: GX's ``expect_column_pair_values_to_be_in_set``.

A failed custom expectation names only the columns that failed, so the manifest's
``failed_expectations`` reads ``weight_hist: expect_columns_values_to_be_between(count)``.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import ClassVar, Tuple

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.core.metric_domain_types import MetricDomainTypes  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import BatchExpectation  # noqa: E402
from great_expectations.expectations.metrics.metric_provider import metric_value  # noqa: E402
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider  # noqa: E402

from ingest.schema import Expect  # noqa: E402

logging.getLogger("great_expectations").setLevel(logging.ERROR)


def _table(execution_engine, metric_domain_kwargs) -> pd.DataFrame:
    df, _, _ = execution_engine.get_compute_domain(domain_kwargs=metric_domain_kwargs,
                                                   domain_type=MetricDomainTypes.TABLE)
    return df


def out_of_range(x: np.ndarray, lo, hi, strict: bool) -> bool:
    """Whether any non-NULL value of ``x`` lies outside [lo, hi] ((lo, hi) if ``strict``)."""
    x = x[~np.isnan(x)]
    if lo is not None and ((x <= lo) if strict else (x < lo)).any():
        return True
    return hi is not None and bool(((x >= hi) if strict else (x > hi)).any())


class DuplicateKeys(TableMetricProvider):
    metric_name = "table.duplicate_keys"
    value_keys = ("column_list",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        df = _table(execution_engine, metric_domain_kwargs)
        return int(df.duplicated(subset=list(metric_value_kwargs["column_list"])).sum())


class ColumnsWithNulls(TableMetricProvider):
    metric_name = "table.columns_with_nulls"
    value_keys = ("column_list",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        df = _table(execution_engine, metric_domain_kwargs)
        return [c for c in metric_value_kwargs["column_list"] if df[c].isna().any()]


class ColumnsOutOfRange(TableMetricProvider):
    metric_name = "table.columns_out_of_range"
    value_keys = ("column_list", "ranges")

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        df = _table(execution_engine, metric_domain_kwargs)
        return [c for c, (lo, hi, strict) in zip(metric_value_kwargs["column_list"], metric_value_kwargs["ranges"])
                if out_of_range(df[c].to_numpy(dtype="float64", na_value=np.nan), lo, hi, strict)]


class _TableExpectation(BatchExpectation):
    column_list: list
    domain_keys: ClassVar[Tuple[str, ...]] = ("row_condition", "condition_parser")
    success_keys = ("column_list",)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        observed = metrics[self.metric_dependencies[0]]
        return {"success": not observed, "result": {"observed_value": observed}}


class ExpectCompoundKeyToBeUnique(_TableExpectation):
    """Expect no two rows to share their values of ``column_list`` (observed: repeated rows)."""
    metric_dependencies = ("table.duplicate_keys",)


class ExpectColumnsToNotBeNull(_TableExpectation):
    """Expect no NULL in any of ``column_list`` (observed: the columns holding one)."""
    metric_dependencies = ("table.columns_with_nulls",)


class ExpectColumnsValuesToBeBetween(_TableExpectation):
    """Expect each column's non-NULL values in its range: ``ranges[i]`` = (lo, hi, strict)
    for ``column_list[i]``, a None bound absent (observed: the columns out of range)."""
    ranges: list
    metric_dependencies = ("table.columns_out_of_range",)
    success_keys = ("column_list", "ranges")


def gx_expectations(expectations: tuple[Expect, ...]) -> list:
    """The GX expectations of one table's declarations."""
    out = []
    not_null = list(dict.fromkeys(c for e in expectations if e.kind == "not_null" for c in e.columns))
    ranges = [e for e in expectations if e.kind == "between"]
    for e in expectations:
        cols = list(e.columns)
        if e.kind == "unique":
            out.append(ExpectCompoundKeyToBeUnique(column_list=cols))
        elif e.kind == "greater":
            out.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=cols[0], column_B=cols[1], or_equal=not e.strict, ignore_row_if="either_value_is_missing"))
        elif e.kind == "pairs_in":
            out.append(gxe.ExpectColumnPairValuesToBeInSet(
                column_A=cols[0], column_B=cols[1], value_pairs_set=[tuple(p) for p in e.values]))
        elif e.kind not in ("not_null", "between"):
            raise ValueError(f"unknown expectation kind {e.kind!r}")
    if not_null:
        out.append(ExpectColumnsToNotBeNull(column_list=not_null))
    if ranges:
        out.append(ExpectColumnsValuesToBeBetween(column_list=[e.columns[0] for e in ranges],
                                                  ranges=[[e.lo, e.hi, e.strict] for e in ranges]))
    return out


def describe(table: str, result) -> str:
    """``table: expectation_type(columns)`` for a failed result (the failing columns only,
    for the expectations over many columns that report them)."""
    config, kw = result.expectation_config, result.expectation_config.kwargs
    observed = (result.result or {}).get("observed_value")
    if config.type in ("expect_columns_to_not_be_null", "expect_columns_values_to_be_between") and observed:
        cols = list(observed)
    else:
        cols = kw.get("column_list") or [c for c in (kw.get("column"), kw.get("column_A"), kw.get("column_B")) if c]
    return f"{table}: {config.type}({', '.join(cols)})"


class Gate:
    """The process's GX objects: built once, reused by every job."""

    def __init__(self):
        self.lock = threading.Lock()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("tdw_jobs")
        self.batches: dict[str, object] = {}
        self.suites: dict[tuple, object] = {}

    def _batch_definition(self, table: str):
        if table not in self.batches:
            asset = self.source.add_dataframe_asset(table)
            self.batches[table] = asset.add_batch_definition_whole_dataframe("job")
        return self.batches[table]

    def _suite(self, table: str, expectations: tuple[Expect, ...]):
        key = (table, expectations)
        if key not in self.suites:
            suite = gx.ExpectationSuite(name=f"{table}_{len(self.suites)}")
            for x in gx_expectations(expectations):
                suite.add_expectation(x)
            self.suites[key] = suite
        return self.suites[key]

    def failures(self, table: str, frame: pd.DataFrame, expectations: tuple[Expect, ...]) -> list[str]:
        """Descriptions of the expectations ``frame`` fails (empty: it passes)."""
        used = list(dict.fromkeys(c for e in expectations for c in e.columns))
        missing = [c for c in used if c not in frame.columns]
        if missing:
            return [f"{table}: expect_column_to_exist({c})" for c in missing]
        frame = frame[used]                                 # never the list columns (token ids, samples)
        nullable = [c for c in used if str(frame[c].dtype) in ("Float64", "Int64", "Int32", "boolean")]
        if nullable:                                        # GX's pandas metrics want NaN, not pd.NA
            frame = frame.astype({c: "float64" if str(frame[c].dtype) != "boolean" else "object"
                                  for c in nullable})
        with self.lock:
            suite = self._suite(table, expectations)
            if not suite.expectations:
                return []
            batch = self._batch_definition(table).get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(suite, result_format="BOOLEAN_ONLY")
            if result.success:
                return []
            result = batch.validate(suite, result_format="BASIC")   # again, for the failing columns
        return [describe(table, r) for r in result.results if not r.success]


_GATE: Gate | None = None
_GATE_LOCK = threading.Lock()


def gate() -> Gate:
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = Gate()
        return _GATE
