"""The probe interface.

A probe is pure compute: given one checkpoint (and its parameters) it returns tables as
pandas frames, one per raw table it declares. It never touches the warehouse; the
warehouse creates the declared tables, and replaces one job's rows atomically.

The table declarations (``TableSpec``, ``Expect`` and its constructors) and
``params_hash`` live in ``ingest.schema``, which imports nothing heavy, so the warehouse
reads them without loading torch. They are re-exported here so that modules
written against this interface keep importing them from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import pandas as pd

from ingest.errors import TdwError
from ingest.schema import FINITE, Expect, TableSpec, between, finite, greater, not_null, pairs_in, params_hash, unique
from ingest.sources import Checkpoint

Progress = Callable[[str], None]

__all__ = [
    "FINITE",
    "Expect",
    "Probe",
    "Progress",
    "TableSpec",
    "between",
    "finite",
    "greater",
    "not_null",
    "pairs_in",
    "params_hash",
    "unique",
]


class Probe(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    tables: ClassVar[tuple[TableSpec, ...]]
    defaults: ClassVar[dict[str, Any]] = {}
    runs_model: ClassVar[bool] = False  # runs the full model (costly), or only reads tensors
    # run only when named (``--probes llc`` or ``all``), not by default: a sampler that costs
    # many forward+backward passes per checkpoint
    opt_in: ClassVar[bool] = False

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The full, explicit parameter set (stored in the manifest with every job)."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise TdwError(
                f"probe {self.name!r} has no parameter {unknown[0]!r}; "
                f"its parameters: {', '.join(sorted(self.defaults))}"
            )
        p = dict(self.defaults)
        p.update({k: v for k, v in overrides.items() if v is not None})
        return p

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:  # noqa: B027
        """Fail fast on bad parameters before any job of a batch runs (default: nothing)."""

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        """State shared by every checkpoint of one model (e.g. a sample of indices)."""
        return {}

    def expectations(
        self, frames: dict[str, pd.DataFrame], job: dict[str, Any] | None = None
    ) -> dict[str, tuple[Expect, ...]]:
        """What must hold of each table's frame before the job commits (default: each
        TableSpec's ``expectations()``); may depend on the frames or the job."""
        return {t.name: t.expectations() for t in self.tables}

    @abstractmethod
    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, pd.DataFrame]:
        """Tables for one checkpoint: {table name: frame with that table's columns}."""
