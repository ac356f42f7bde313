"""The storage and serving layer imports no model library.

``tdw sql`` and ``tdw serve`` are what BI users start; they read DuckDB files and must not
pay for (or depend on) torch, transformers or nnsight. The table declarations they share
with the probes live in ``ingest.schema`` for that reason. Each check runs in a fresh
interpreter, so modules an earlier test imported cannot hide an import.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "nnsight")


def loaded_after(statement: str) -> list[str]:
    """The heavy modules present in ``sys.modules`` after ``statement`` runs in a new process."""
    code = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_data_layer_loads_no_model_library():
    assert loaded_after("import warehouse.db, warehouse.sql, warehouse.serve") == []


@pytest.mark.parametrize("module", ["ingest", "ingest.schema", "warehouse.snapshot", "warehouse.quality"])
def test_shared_declarations_load_no_model_library(module):
    assert loaded_after(f"import {module}") == []


def test_the_check_sees_a_heavy_import():
    """The probe registry does import torch: the check above would notice a path to it."""
    assert "torch" in loaded_after("import ingest.probes")
