"""The data-quality gate: every job's frames are checked before its transaction begins.

Each probe declares, per raw table, what must hold of a job's rows (``TableSpec.expect``
and ``Probe.expectations``: the natural key unique and not NULL, counts >= 0, densities
and fractions in [0, 1], perplexity > 0, finiteness where the probe guarantees it, the
graph's allowed edges). ``validate_job`` runs them with Great Expectations
(``quality_gx``: one context, datasource and suite per process, reused by every job;
one GX validation a job, of the rows that decide each expectation) and
raises ``QualityError`` naming every failed expectation as ``table: expectation(columns)``.
``warehouse.db.load_job`` calls it before ``BEGIN TRANSACTION``, so a failing job commits
nothing, is recorded as failed with the list in ``raw.ingest_runs.failed_expectations``,
and the batch goes on.

Empty frames (a displacement job on a model's first checkpoint) have nothing to check.
Great Expectations is imported on the first non-empty job, not at import time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from ingest.errors import TdwError
from ingest.schema import Expect, TableSpec

if TYPE_CHECKING:
    from ingest.probes.base import Probe


class QualityError(TdwError):
    """A job's frames failed the gate; ``expectations`` lists what failed."""

    def __init__(self, expectations: list[str], probe: str = ""):
        self.expectations = list(expectations)
        what = f"{probe} " if probe else ""
        super().__init__(f"{what}data-quality gate failed ({len(self.expectations)}): "
                         + "; ".join(self.expectations))


def registered_probe(name: str | None) -> Probe | None:
    """The registered probe called ``name`` (None when there is none)."""
    from ingest.probes import PROBES
    cls = PROBES.get(name or "")
    return cls() if cls else None


def declared(probe: Probe | None, frames: dict[str, pd.DataFrame], job: dict[str, Any] | None = None,
             specs: Iterable[TableSpec] = ()) -> dict[str, tuple[Expect, ...]]:
    """The expectations of each table: the probe's, or (no probe) the TableSpecs' own."""
    if probe is not None:
        return probe.expectations(frames, job)
    return {s.name: s.expectations() for s in specs}


def validate_frames(expectations: dict[str, tuple[Expect, ...]], frames: dict[str, pd.DataFrame],
                    probe: str = "") -> None:
    """Check every non-empty frame against its table's expectations; QualityError if any fails."""
    todo = [(t, f) for t, f in frames.items() if len(f) and expectations.get(t)]
    if not todo:
        return
    from warehouse.quality_gx import gate
    g = gate()
    failed = g.job_failures([(table, frame, expectations[table]) for table, frame in todo])   # one GX run a job
    if failed:
        raise QualityError(failed, probe)


def validate_job(probe: Probe, frames: dict[str, pd.DataFrame], job: dict[str, Any] | None = None) -> None:
    """The gate for one job of ``probe``: raises QualityError naming what failed."""
    validate_frames(declared(probe, frames, job), frames, probe.name)
