"""The Great Expectations side of the quality gate: imported only when a job is validated
(importing GX costs seconds), then kept for the life of the process.

GX spends its time on bookkeeping, not on data: each validation builds a batch (hashing
the whole frame), a validator and a metric graph, about 10 ms on a quiet core and 40-60 ms
on a loaded one, whatever the frame's size. So a job is validated in one GX validation
of one small frame, whatever its number of tables and rows:

1. **Witness rows.** For each table, the rows that decide every declared expectation
   (``Expect``, ``ingest.schema``) are picked in numpy: the rows holding each ranged
   column's minimum and maximum, the first NULL of each not-NULL column, one repeated key
   (both rows), the first row breaking a pair rule. A subset of rows fails an expectation
   exactly when the whole frame does (a range holds iff it holds at the extremes; a key
   repeated in the frame is repeated in the pair kept, and no subset of unique keys
   repeats one), so the verdicts are the full frame's.
2. **One batch a job.** The tables' witness rows are set side by side in one frame
   (columns ``<table>:<column>`` in their own dtypes; ``<table>:`` marks the rows the table
   has) and validated by one
   custom ``BatchExpectation``, ``expect_tables_to_meet_declarations``, whose metric
   evaluates every declaration of every table on its rows. The declarations reach the
   metric by a short key (a registry of this process), so GX never copies the graph's
   allowed-edge set into its configurations.
3. **Built once.** One ephemeral context, one pandas datasource, asset and batch
   definition, and one suite per distinct set of declarations, reused by every job;
   the validator is made from the batch definition directly (a batch is built once).
4. **GX where it decides something.** The metric's verdict is ``evaluate`` on the witness
   rows, which this process can compute without GX's bookkeeping (20-90 ms a job on a
   loaded machine, more than many probes). So each job's witness rows are evaluated
   first: a job that fails anything goes through GX, which words the report; a passing
   job goes through GX until GX has confirmed a passing verdict for its set of
   declarations once in this process, then passes on the same verdict alone.

A failure is reported as ``table: expectation_type(columns)`` with GX's names
(``expect_compound_key_to_be_unique``, ``expect_columns_to_not_be_null``,
``expect_columns_values_to_be_between`` naming only the failing columns,
``expect_column_pair_values_a_to_be_greater_than_b``,
``expect_column_pair_values_to_be_in_set``). NULLs are never range-checked: a column the
probe leaves NULL by design passes. DESIGN.md: GX 1.x's SQL datasource fails on DuckDB, so
frames are validated as pandas frames, with analytics off.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import ClassVar

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.core.metric_domain_types import MetricDomainTypes  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import BatchExpectation  # noqa: E402
from great_expectations.expectations.metrics.metric_provider import metric_value  # noqa: E402
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider  # noqa: E402
from great_expectations.validator.v1_validator import Validator  # noqa: E402

from ingest.schema import Expect  # noqa: E402

logging.getLogger("great_expectations").setLevel(logging.ERROR)

TYPES = {
    "unique": "expect_compound_key_to_be_unique",
    "not_null": "expect_columns_to_not_be_null",
    "between": "expect_columns_values_to_be_between",
    "greater": "expect_column_pair_values_a_to_be_greater_than_b",
    "pairs_in": "expect_column_pair_values_to_be_in_set",
}
ORDER = {"unique": 0, "greater": 0, "pairs_in": 0, "not_null": 1, "between": 2}  # reporting order
SEP = ":"


Columns = dict  # column name -> pandas Series (a job's frame) or numpy array (witness rows)


def _floats(x) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x.astype(np.float64, copy=False)
    return pd.Series(x, copy=False).to_numpy(dtype="float64", na_value=np.nan)


def _constant(x) -> bool:
    """Every value the same and none NULL (cheap for a frame's Arrow-backed strings)."""
    if len(x) == 0:
        return True
    first = x.iloc[0] if isinstance(x, pd.Series) else x[0]
    if first is None or first is pd.NA or (isinstance(first, float) and np.isnan(first)):
        return False
    return bool(np.all(np.asarray(x == first, dtype=bool)))


def _nulls(x) -> np.ndarray:
    return np.asarray(pd.isna(x), dtype=bool)


def _out_of_range(x: np.ndarray, e: Expect) -> np.ndarray:
    """Rows whose non-NULL value lies outside [lo, hi] ((lo, hi) if strict)."""
    bad = np.zeros(x.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        if e.lo is not None:
            bad |= (x <= e.lo) if e.strict else (x < e.lo)
        if e.hi is not None:
            bad |= (x >= e.hi) if e.strict else (x > e.hi)
    return bad & ~np.isnan(x)


def _key_codes(cols: list, n: int) -> np.ndarray:
    """One integer per row, equal exactly when the rows' values of ``cols`` are (NULLs
    equal to each other): each column numbered (an integer column by its offset from its
    minimum when its range is small, any other by factorizing), combined in mixed radix."""
    combined, radix = np.zeros(n, dtype=np.int64), 1
    for x in cols:
        v = np.asarray(x) if isinstance(x, np.ndarray) or x.dtype.kind in "iu" else None
        if v is not None and v.dtype.kind in "iu" and n:
            lo, hi = int(v.min()), int(v.max())
            codes, k = ((v - lo).astype(np.int64), hi - lo + 1) if hi - lo < 4 * n else (None, 0)
        else:
            codes = None
        if codes is None:
            if v is None and _constant(x):
                continue
            codes, uniques = pd.factorize(x, use_na_sentinel=False)
            k = len(uniques)
        if k <= 1:  # a constant column tells no rows apart
            continue
        if radix * k >= 1 << 62:  # keep the product in range: renumber
            combined = pd.factorize(combined)[0].astype(np.int64)
            radix = int(combined.max()) + 1
        combined = combined * k + codes
        radix *= k
    return combined


def _repeated(cols: list, n: int) -> np.ndarray:
    """Positions of one repeated key (two rows sharing it); empty when every key is unique."""
    if n < 2:
        return np.zeros(0, dtype=np.int64)
    key = _key_codes(cols, n)
    if int(key.max()) < 4 * n:
        counts = np.bincount(key)
        if counts.max() < 2:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(key == int(np.argmax(counts)))[:2]
    later = pd.Series(key).duplicated().to_numpy()
    if not later.any():
        return np.zeros(0, dtype=np.int64)
    i = int(np.argmax(later))
    return np.array([int(np.argmax(key == key[i])), i])


def _pair_violations(a, b, e: Expect) -> np.ndarray:
    if e.kind == "greater":
        x, y = _floats(a), _floats(b)
        with np.errstate(invalid="ignore"):
            return ~np.isnan(x) & ~np.isnan(y) & ((x <= y) if e.strict else (x < y))
    allowed = set(e.values)
    return np.array([(u, v) not in allowed for u, v in zip(a.tolist(), b.tolist())], dtype=bool)


def evaluate(cols: Columns, n: int, expectations: tuple[Expect, ...]) -> list[str]:
    """``expectation_type(columns)`` for each declaration the rows fail, in reporting order."""
    out: list[tuple[int, int, str]] = []
    nulls = [
        c
        for c in dict.fromkeys(c for e in expectations if e.kind == "not_null" for c in e.columns)
        if _nulls(cols[c]).any()
    ]
    if nulls:
        out.append((1, 0, f"{TYPES['not_null']}({', '.join(nulls)})"))
    ranged = [
        e.columns[0]
        for e in expectations
        if e.kind == "between" and _out_of_range(_floats(cols[e.columns[0]]), e).any()
    ]
    if ranged:
        out.append((2, 0, f"{TYPES['between']}({', '.join(dict.fromkeys(ranged))})"))
    for k, e in enumerate(expectations):
        if e.kind == "unique":
            failed = len(_repeated([cols[c] for c in e.columns], n)) > 0
        elif e.kind in ("greater", "pairs_in"):
            failed = bool(_pair_violations(cols[e.columns[0]], cols[e.columns[1]], e).any())
        elif e.kind in ("not_null", "between"):
            continue
        else:
            raise ValueError(f"unknown expectation kind {e.kind!r}")
        if failed:
            out.append((0, k, f"{TYPES[e.kind]}({', '.join(e.columns)})"))
    return [d for _, _, d in sorted(out)]


def witnesses(cols: Columns, n: int, expectations: tuple[Expect, ...]) -> np.ndarray:
    """Sorted positions of rows on which every declaration has the whole frame's verdict."""
    rows: list[np.ndarray] = [np.zeros(min(n, 1), dtype=np.int64)]
    for e in expectations:
        if e.kind == "unique":
            rows.append(_repeated([cols[c] for c in e.columns], n))
        elif e.kind == "not_null":
            for c in e.columns:
                isnull = _nulls(cols[c])
                if isnull.any():
                    rows.append(np.array([int(np.argmax(isnull))]))
        elif e.kind == "between":
            x = _floats(cols[e.columns[0]])
            if not np.isnan(x).all():
                rows.append(np.array([int(np.nanargmin(x)), int(np.nanargmax(x))]))
        else:
            bad = _pair_violations(cols[e.columns[0]], cols[e.columns[1]], e)
            if bad.any():
                rows.append(np.array([int(np.argmax(bad))]))
    return np.unique(np.concatenate(rows))


_DECLARATIONS: dict[str, tuple[tuple[str, tuple[Expect, ...]], ...]] = {}


class FailedDeclarations(TableMetricProvider):
    metric_name = "table.failed_declarations"
    value_keys = ("declarations",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        df, _, _ = execution_engine.get_compute_domain(
            domain_kwargs=metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        failed = []
        for table, expectations in _DECLARATIONS[metric_value_kwargs["declarations"]]:
            mine = df[table + SEP].to_numpy(dtype=bool)
            cols = {
                c[len(table) + 1 :]: df[c].to_numpy()[mine]
                for c in df.columns
                if c.startswith(table + SEP) and c != table + SEP
            }
            failed += [f"{table}: {d}" for d in evaluate(cols, int(mine.sum()), expectations)]
        return failed


class ExpectTablesToMeetDeclarations(BatchExpectation):
    """Expect each table's rows (columns ``<table>:<column>``; ``<table>:`` marks its rows)
    to meet its declared expectations (observed: ``table: expectation_type(columns)`` for
    each one failed)."""

    declarations: str
    domain_keys: ClassVar[tuple[str, ...]] = ("row_condition", "condition_parser")
    success_keys = ("declarations",)
    metric_dependencies = ("table.failed_declarations",)

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        observed = metrics["table.failed_declarations"]
        return {"success": not observed, "result": {"observed_value": observed}}


def side_by_side(parts: list[tuple[str, dict[str, np.ndarray], int]]) -> pd.DataFrame:
    """One frame holding every table's rows side by side: columns ``<table>:<column>``,
    row i of each table in row i, ``<table>:`` true where the table has a row i (a shorter
    table's last row repeats below it, so every column keeps its dtype)."""
    rows = max(n for _, _, n in parts)
    data: dict[str, np.ndarray] = {}
    for table, cols, n in parts:
        fill = np.minimum(np.arange(rows), n - 1)
        data[table + SEP] = np.arange(rows) < n
        for c, v in cols.items():
            data[f"{table}{SEP}{c}"] = v[fill]
    return pd.DataFrame(data, copy=False)


def _rows(x, keep: np.ndarray) -> np.ndarray:
    """The rows ``keep`` of a column as a numpy array (object for strings and nullables)."""
    if isinstance(x, np.ndarray):
        return x[keep]
    return np.asarray(x.array.take(keep))


class Gate:
    """The process's GX objects: built once, reused by every job."""

    def __init__(self):
        self.lock = threading.Lock()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("tdw_jobs")
        self.batch = self.source.add_dataframe_asset("job").add_batch_definition_whole_dataframe("job")
        self.suites: dict[tuple, object] = {}
        self.confirmed: set[tuple] = set()  # declarations GX has validated a passing job of

    def _suite(self, declarations: tuple):
        if declarations not in self.suites:
            key = f"d{len(self.suites)}"
            _DECLARATIONS[key] = declarations
            suite = gx.ExpectationSuite(name=f"tdw_{key}")
            suite.add_expectation(ExpectTablesToMeetDeclarations(declarations=key))
            self.suites[declarations] = suite
        return self.suites[declarations]

    def job_failures(self, tables: list[tuple[str, pd.DataFrame, tuple[Expect, ...]]]) -> list[str]:
        """Descriptions of the declarations the job's tables fail (empty: it passes)."""
        missing, parts, declarations = [], [], []
        for table, frame, expectations in tables:
            used = list(dict.fromkeys(c for e in expectations for c in e.columns))
            absent = [c for c in used if c not in frame.columns]
            missing += [f"{table}: expect_column_to_exist({c})" for c in absent]
            if absent or not expectations:
                continue
            cols = {c: frame[c] for c in used}  # never the list columns (token ids, samples)
            keep = witnesses(cols, len(frame), expectations)
            parts.append((table, {c: _rows(v, keep) for c, v in cols.items()}, keep.size))
            declarations.append((table, expectations))
        if missing or not parts:
            return missing
        key = tuple(declarations)
        passes = not any(evaluate(cols, n, e) for (_, cols, n), (_, e) in zip(parts, declarations))
        if passes and key in self.confirmed:
            return []  # the witness rows pass, and GX has confirmed that verdict for these declarations
        batch = side_by_side(parts)
        with self.lock:
            suite = self._suite(key)
            validator = Validator(
                batch_definition=self.batch, batch_parameters={"dataframe": batch}, result_format="BASIC"
            )
            result = validator.validate_expectation_suite(suite)
        if result.success:
            if passes:
                self.confirmed.add(key)
            return []
        return [d for r in result.results for d in (r.result or {}).get("observed_value") or []]

    def failures(self, table: str, frame: pd.DataFrame, expectations: tuple[Expect, ...]) -> list[str]:
        """Descriptions of the expectations one table's ``frame`` fails (empty: it passes)."""
        return self.job_failures([(table, frame, expectations)])


_GATE: Gate | None = None
_GATE_LOCK = threading.Lock()


def gate() -> Gate:
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = Gate()
        return _GATE
