"""Residual-stream dynamics probe (METHODS §C): capture, metrics, PCA, attractor runs."""

from ingest.probes.residual.probe import ResidualProbe

__all__ = ["ResidualProbe"]
