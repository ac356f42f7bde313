"""Probe registry: every probe the project has, by name. `tdw ingest --probes` picks from it."""
from __future__ import annotations

from ingest.errors import TdwError
from ingest.probes.base import Probe
from ingest.schema import TableSpec
from ingest.probes.weights import WeightsProbe

PROBES: dict[str, type[Probe]] = {p.name: p for p in (WeightsProbe,)}
from ingest.probes.params_registry import PARAM_PROBES  # noqa: E402  (perplexity, covariance, displacement)
PROBES.update({p.name: p for p in PARAM_PROBES})
from ingest.probes.graph.probe import GraphProbe  # noqa: E402
PROBES[GraphProbe.name] = GraphProbe
from ingest.probes.residual import ResidualProbe  # noqa: E402
PROBES[ResidualProbe.name] = ResidualProbe


def get_probes(names: str | None) -> list[Probe]:
    """Probe instances for a comma-separated list (None or 'all': every probe)."""
    if names in (None, "", "all"):
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
