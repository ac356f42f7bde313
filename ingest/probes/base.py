"""The probe interface.

A probe is pure compute: given one checkpoint (and its parameters) it returns tables as
pandas frames, one per raw table it declares. It never touches the warehouse; the
warehouse creates the declared tables, and replaces one job's rows atomically.

Each ``TableSpec`` declares its natural key and ``replace_by``: the key columns (after
``model_id`` and ``step``, which every raw table has) that identify the slice a job owns.
Loading a job deletes the rows of the slices present in its output, then inserts, in one
transaction, so a rerun never duplicates or half-writes rows.
"""
from __future__ import annotations

import hashlib
import json
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import pandas as pd

from ingest.errors import TdwError
from ingest.sources import Checkpoint

Progress = Callable[[str], None]


FINITE = sys.float_info.max          # |x| <= FINITE  <=>  x is finite (for non-NULL x)


@dataclass(frozen=True)
class Expect:
    """One expectation on a table's frame. ``kind``: ``unique`` / ``not_null`` (``columns``
    together), ``between`` (one column's non-NULL values in [lo, hi], open at a bound when
    ``strict``; a None bound is absent), ``greater`` (columns (a, b): a > b, or a >= b
    when not ``strict``, where both are set), ``pairs_in`` ((a, b) values in ``values``)."""
    kind: str
    columns: tuple[str, ...]
    lo: float | None = None
    hi: float | None = None
    strict: bool = False
    values: tuple = ()


def unique(*columns: str) -> Expect:
    return Expect("unique", columns)


def not_null(*columns: str) -> Expect:
    return Expect("not_null", columns)


def between(column: str, lo: float | None = None, hi: float | None = None, strict: bool = False) -> Expect:
    return Expect("between", (column,), lo, hi, strict)


def finite(column: str, lo: float | None = None, hi: float | None = None, strict: bool = False) -> Expect:
    """Finite (where not NULL), and in [lo, hi] (or (lo, hi) when ``strict``) when given."""
    return between(column, -FINITE if lo is None else lo, FINITE if hi is None else hi, strict)


def greater(a: str, b: str, or_equal: bool = False) -> Expect:
    return Expect("greater", (a, b), strict=not or_equal)


def pairs_in(a: str, b: str, pairs) -> Expect:
    return Expect("pairs_in", (a, b), values=tuple(sorted(tuple(p) for p in pairs)))


@dataclass(frozen=True)
class TableSpec:
    name: str                                  # raw.<name>
    columns: tuple[tuple[str, str], ...]       # (column, DuckDB type), model_id/step first
    key: tuple[str, ...]                       # natural key
    replace_by: tuple[str, ...] = ()           # slice a job owns, beyond (model_id, step)
    description: str = ""
    expect: tuple[Expect, ...] = ()            # checked before a job's rows are committed

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def expectations(self) -> tuple[Expect, ...]:
        """The natural key unique and not NULL, then the declared ``expect``."""
        return (unique(*self.key), not_null(*self.key), *self.expect)


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Probe(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    tables: ClassVar[tuple[TableSpec, ...]]
    defaults: ClassVar[dict[str, Any]] = {}
    runs_model: ClassVar[bool] = False        # runs the full model (costly), or only reads tensors

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The full, explicit parameter set (stored in the manifest with every job)."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise TdwError(f"probe {self.name!r} has no parameter {unknown[0]!r}; "
                           f"its parameters: {', '.join(sorted(self.defaults))}")
        p = dict(self.defaults)
        p.update({k: v for k, v in overrides.items() if v is not None})
        return p

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        """Fail fast on bad parameters before any job of a batch runs (default: nothing)."""

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        """State shared by every checkpoint of one model (e.g. a sample of indices)."""
        return {}

    def expectations(self, frames: dict[str, pd.DataFrame], job: dict[str, Any] | None = None
                     ) -> dict[str, tuple[Expect, ...]]:
        """What must hold of each table's frame before the job commits (default: each
        TableSpec's ``expectations()``); may depend on the frames or the job."""
        return {t.name: t.expectations() for t in self.tables}

    @abstractmethod
    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        """Tables for one checkpoint: {table name: frame with that table's columns}."""
