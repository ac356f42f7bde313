"""What a raw table is, what must hold of its rows, and a job's parameter identity.

Probes declare their tables here and the warehouse creates, loads and checks them from the
same declarations, so this module is the one both sides import. It imports nothing heavy
(no torch, transformers or nnsight; the standard library only): storage and serving code
(``warehouse.db``, ``warehouse.quality_gx``, ``tdw sql``, ``tdw serve``) reads it without
loading a model library.

Each ``TableSpec`` declares its natural key and ``replace_by``: the key columns (after
``model_id`` and ``step``, which every raw table has) that identify the slice a job owns.
Loading a job deletes the rows of the slices present in its output, then inserts, in one
transaction, so a rerun never duplicates or half-writes rows. ``Expect`` rows are the
data-quality gate's declarations (``warehouse.quality``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

FINITE = sys.float_info.max  # |x| <= FINITE  <=>  x is finite (for non-NULL x)


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
    name: str  # raw.<name>
    columns: tuple[tuple[str, str], ...]  # (column, DuckDB type), model_id/step first
    key: tuple[str, ...]  # natural key
    replace_by: tuple[str, ...] = ()  # slice a job owns, beyond (model_id, step)
    description: str = ""
    expect: tuple[Expect, ...] = ()  # checked before a job's rows are committed
    # the key as a PRIMARY KEY index; False for bulky tables (one row per histogram code),
    # whose key the gate (unique within a job) and the slice replacement (one job's rows
    # replace its slices, one writer) already keep unique, and whose index would cost
    # most of a job's load
    indexed: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def expectations(self) -> tuple[Expect, ...]:
        """The natural key unique and not NULL, then the declared ``expect``."""
        return (unique(*self.key), not_null(*self.key), *self.expect)


def params_hash(params: dict[str, Any]) -> str:
    """A job's parameter identity: sha256 of the canonical JSON of ``params`` (16 hex digits)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
