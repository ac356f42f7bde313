"""`tdw ingest` hands its options to ``IngestRequest`` by name (``**options``): every option
but those the command itself consumes must be a field of the request, and every field but
those the command fills otherwise must be an option, or the command would fail (or drop an
option) only when called."""

from __future__ import annotations

import dataclasses

from tdw.cli import main
from warehouse.pipeline import IngestRequest

CONSUMED = {"source", "resume", "tensors", "params"}  # read by the command, not passed through
FILLED = {"source", "params", "progress"}  # set by the command, or left at its default


def test_ingest_options_are_the_request_fields():
    options = {p.name for p in main.commands["ingest"].params}
    fields = {f.name for f in dataclasses.fields(IngestRequest)}
    assert options - CONSUMED == fields - FILLED
    assert options >= CONSUMED


def test_request_defaults_are_the_option_defaults(monkeypatch):
    """The request's defaults (used by scripts and tests) are what the command parses
    when no option is given."""
    monkeypatch.delenv("TDW_WAREHOUSE", raising=False)
    parsed = main.commands["ingest"].make_context("ingest", ["toy/neox-2l"]).params
    defaults = {f.name: f.default for f in dataclasses.fields(IngestRequest)}
    differ = {k: (parsed[k], defaults[k]) for k in defaults.keys() - FILLED if parsed[k] != defaults[k]}
    assert not differ
