"""`tdw docs`: dbt's static docs site with lineage and column descriptions of the marts.

The README promises that every mart and column is described: the catalog (what the built
warehouse holds) is checked against the manifest (what the YAML describes), so a column added
to a mart without a description fails here.
"""

from __future__ import annotations

import json
import shutil

import pytest

from warehouse.docs import generate_docs

# dbt opens the warehouse read-write to generate its catalog: one worker generates it, on a
# private copy, so the shared built warehouse is never locked while other tests read it.
pytestmark = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="module")
def docs(built_warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    copy = tmp_path_factory.mktemp("docs-warehouse") / built_warehouse.name
    shutil.copyfile(built_warehouse, copy)
    index = generate_docs(copy, out)
    manifest = json.loads((out / "manifest.json").read_text())
    catalog = json.loads((out / "catalog.json").read_text())
    return index, manifest, catalog


def undocumented_mart_columns(manifest: dict, catalog: dict) -> list[str]:
    """`mart.column` for every column the catalog finds in schema marts without a description
    in the manifest (and `mart` for a mart without one)."""
    missing = []
    for unique_id, table in catalog["nodes"].items():
        if table["metadata"]["schema"] != "marts" or not unique_id.startswith("model."):
            continue
        node = manifest["nodes"][unique_id]
        name = node["name"]
        if not node.get("description", "").strip():
            missing.append(name)
        described = {c.lower(): (v.get("description") or "").strip() for c, v in node["columns"].items()}
        missing += [f"{name}.{column}" for column in table["columns"] if not described.get(column.lower())]
    return sorted(missing)


@pytest.mark.slow
def test_docs_site_has_lineage_and_column_descriptions(docs):
    index, manifest, catalog = docs
    assert index.name == "index.html" and index.stat().st_size > 100_000
    nodes = manifest["nodes"]
    msd = nodes["model.tdw.fct_msd"]
    assert "model.tdw.int_msd" in msd["depends_on"]["nodes"]  # lineage
    assert nodes["model.tdw.dim_checkpoint"]["columns"]["model_id"]["description"]  # column descriptions
    assert "model.tdw.fct_msd" in catalog["nodes"]  # the catalog read the warehouse
    assert "fct_msd" in index.read_text()  # the static page embeds the manifest


@pytest.mark.slow
def test_every_mart_column_is_described(docs):
    _, manifest, catalog = docs
    marts = [k for k, t in catalog["nodes"].items() if t["metadata"]["schema"] == "marts"]
    assert len(marts) >= 27  # the catalog saw the built marts
    assert undocumented_mart_columns(manifest, catalog) == []


def test_the_check_names_what_is_undocumented():
    """The rule itself, on a two-mart manifest and catalog: a described column passes, an
    undescribed or absent one is named, and other schemas are not checked."""
    manifest = {
        "nodes": {
            "model.tdw.fct_a": {
                "name": "fct_a",
                "description": "A.",
                "columns": {"x": {"description": "The x."}, "y": {"description": "  "}},
            },
            "model.tdw.fct_b": {"name": "fct_b", "description": "", "columns": {}},
            "model.tdw.stg_c": {"name": "stg_c", "description": "", "columns": {}},
        }
    }
    catalog = {
        "nodes": {
            "model.tdw.fct_a": {"metadata": {"schema": "marts"}, "columns": {"x": {}, "y": {}, "z": {}}},
            "model.tdw.fct_b": {"metadata": {"schema": "marts"}, "columns": {"X": {}}},
            "model.tdw.stg_c": {"metadata": {"schema": "staging"}, "columns": {"q": {}}},
        }
    }
    assert undocumented_mart_columns(manifest, catalog) == ["fct_a.y", "fct_a.z", "fct_b", "fct_b.X"]
