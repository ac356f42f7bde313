"""Probe registry: every probe the project has, by name. `tdw ingest --probes` picks from it."""

from __future__ import annotations

from ingest.errors import TdwError
from ingest.probes.base import Probe
from ingest.probes.capability import CapabilityProbe
from ingest.probes.graph.probe import GraphProbe
from ingest.probes.llc import LLCProbe
from ingest.probes.params_registry import PARAM_PROBES  # perplexity, covariance, displacement
from ingest.probes.residual import ResidualProbe
from ingest.probes.training_log import TrainingLogProbe
from ingest.probes.weights import WeightsProbe
from ingest.schema import TableSpec

# in this order: `tdw ingest` runs the probes (and lists them) as registered here
PROBES: dict[str, type[Probe]] = {
    p.name: p
    for p in (WeightsProbe, *PARAM_PROBES, GraphProbe, ResidualProbe, TrainingLogProbe, CapabilityProbe, LLCProbe)
}


def get_probes(names: str | None) -> list[Probe]:
    """Probe instances for a comma-separated list (None: every probe but the opt-in ones,
    such as ``llc``; 'all': every probe)."""
    if names in (None, ""):
        return [cls() for cls in PROBES.values() if not cls.opt_in]
    if names == "all":
        return [cls() for cls in PROBES.values()]
    out = []
    for n in (x.strip() for x in names.split(",")):
        if n not in PROBES:
            raise TdwError(f"unknown probe {n!r}; available: {', '.join(PROBES)}")
        out.append(PROBES[n]())
    return out


def all_tables() -> list[TableSpec]:
    return [t for cls in PROBES.values() for t in cls.tables]


__all__ = ["PROBES", "Probe", "TableSpec", "get_probes", "all_tables"]
