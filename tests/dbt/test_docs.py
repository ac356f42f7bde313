"""`tdw docs`: dbt's static docs site with lineage and column descriptions of the marts."""
from __future__ import annotations

import json

import pytest

from warehouse.docs import generate_docs


@pytest.mark.slow
def test_docs_site_has_lineage_and_column_descriptions(built_warehouse, tmp_path):
    index = generate_docs(built_warehouse, tmp_path / "docs")
    assert index.name == "index.html" and index.stat().st_size > 100_000
    manifest = json.loads((tmp_path / "docs" / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "docs" / "catalog.json").read_text())
    nodes = manifest["nodes"]
    msd = nodes["model.tdw.fct_msd"]
    assert "model.tdw.int_msd" in msd["depends_on"]["nodes"]  # lineage
    assert nodes["model.tdw.dim_checkpoint"]["columns"]["model_id"]["description"]  # column descriptions
    assert "model.tdw.fct_msd" in catalog["nodes"]  # the catalog read the warehouse
    assert "fct_msd" in index.read_text()  # the static page embeds the manifest
