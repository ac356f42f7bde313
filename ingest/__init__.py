"""Ingest: checkpoint sources and probes. Pure compute over models and tensors; no SQL here."""
