"""The architecture table (``ingest.architectures``) and the places that repeat its names.

The dbt macros in ``dbt_project/macros/tensor_parts.sql`` classify tensor names by the same
module names (embedding, unembedding, norms, attention, MLP, the block list); dbt cannot
import Python, so this test renders the macros with Jinja and runs them in DuckDB on every
family's tensor names: a family added to the table without the macro learning its names
fails here.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import jinja2
import pytest

from ingest.architectures import EMBEDDING_TENSORS, FAMILIES, Family
from ingest.probes.graph.adapters import adapter_for
from ingest.probes.residual.sites import layout_of

MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "tensor_parts.sql"


@pytest.fixture(scope="module")
def macros():
    return jinja2.Environment().from_string(MACROS.read_text()).module


def classify(macros, name: str) -> tuple[str, int | None]:
    con = duckdb.connect()
    sql = f"select {macros.tensor_kind('x')}, {macros.tensor_layer('x')} from (select ? as x)"
    kind, layer = con.execute(sql, [name]).fetchone()
    return kind, layer


def family_tensors(f: Family, layer: int = 3) -> dict[str, tuple[str, int | None]]:
    """Tensor names of one family, with the (kind, layer) the macros must give them."""
    block = f"{f.path('layers')}.{layer}"
    return {
        f.embed_weight: ("embedding", None),
        f.unembed_weight: ("unembedding", None),
        f"{f.unembed_in_file}.weight": ("unembedding", None),
        f"{f.path('final_norm')}.weight": ("layernorm", None),
        f"{block}.{f.mlp_norm}.weight": ("layernorm", layer),
        f"{block}.{f.attn_out}.weight": ("attention", layer),
        f"{block}.{f.mlp}.down.weight": ("mlp", layer),
    }


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_dbt_macros_agree_with_the_architecture_table(macros, model_type):
    for name, expected in family_tensors(FAMILIES[model_type]).items():
        assert classify(macros, name) == expected, name


def test_validation_checks_every_family_embedding():
    for f in FAMILIES.values():
        assert {f.embed_weight, f.unembed_weight} <= set(EMBEDDING_TENSORS)
    assert len(EMBEDDING_TENSORS) == len(set(EMBEDDING_TENSORS))


@pytest.mark.parametrize("config, parallel", [
    ({"model_type": "gpt_neox", "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 4,
      "vocab_size": 64, "max_position_embeddings": 32}, True),
    ({"model_type": "gpt_neox", "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 4,
      "vocab_size": 64, "max_position_embeddings": 32, "use_parallel_residual": False}, False),
    ({"model_type": "gpt2", "n_layer": 2, "n_embd": 16, "n_head": 4, "vocab_size": 64, "n_positions": 32}, False),
    ({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 4,
      "vocab_size": 64, "max_position_embeddings": 32}, False),
])
def test_graph_and_residual_views_read_the_same_family(config, parallel):
    """Both probes place the blocks and the final norm where the table says, and agree on
    whether the residual is parallel (the residual probe's paths are the base model's)."""
    family = FAMILIES[config["model_type"]]
    adapter, layout = adapter_for(config), layout_of(config)
    assert adapter.parallel == layout.parallel == parallel
    assert adapter.layers == f"{family.base}.{layout.arch.layers}"
    assert adapter.final_norm == f"{family.base}.{layout.arch.final_norm}"
    assert adapter.embed == family.embed_weight.removesuffix(".weight")
    assert (adapter.n_layers, adapter.d_model, adapter.n_heads * adapter.d_head) == (2, 16, 16)
    assert layout.n_points == (3 if parallel else 5)
