"""The batched nnsight graph against the naive hooked reference, on tiny models of each
architecture: every edge's every measure within 1e-5, and exactly the edges whose
target the ablation can influence (measured by the reference over all pairs)."""

from __future__ import annotations

import pytest
import torch

from ingest.errors import TdwError
from ingest.probes.graph.ablate import component_graph
from ingest.probes.graph.adapters import adapter_for, node_kind
from ingest.probes.graph.reference import reference_graph
from ingest.probes.graph.tasks import TaskPrompts, induction_prompts

VOCAB = 97


def _model(arch: str) -> torch.nn.Module:
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(7)
    common = dict(bos_token_id=0, eos_token_id=0)
    if arch.startswith("neox"):
        cfg = GPTNeoXConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            rotary_pct=0.25,
            use_parallel_residual=(arch == "neox"),
            tie_word_embeddings=False,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            **common,
        )
        model = GPTNeoXForCausalLM(cfg)
    elif arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=VOCAB,
                n_embd=32,
                n_layer=3,
                n_head=4,
                n_positions=32,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                **common,
            )
        )
    else:
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                max_position_embeddings=32,
                **common,
            )
        )
    with torch.no_grad():  # break init symmetries (zero biases, unit norms)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _ragged_prompts() -> TaskPrompts:
    """Prompts of unequal length (right-padded in the batch), as a user's text file gives."""
    import numpy as np

    rng = np.random.default_rng(3)
    prompts = tuple(rng.integers(0, VOCAB, size=t) for t in (12, 7, 10))
    return TaskPrompts(prompts, "text", np.zeros(3, dtype=np.int64), np.array([11, 6, 9]), np.full(3, -1))


ARCHS = ["neox", "neox-seq", "gpt2", "llama"]


@pytest.fixture(scope="module", params=ARCHS)
def arch_model(request):
    return request.param, _model(request.param)


@pytest.mark.parametrize("ablation,prompts", [("zero", "induction"), ("mean", "ragged")])
def test_every_edge_matches_the_hooked_reference(arch_model, ablation, prompts):
    arch, model = arch_model
    ps = induction_prompts(4, 16, seed=1, vocab=VOCAB) if prompts == "induction" else _ragged_prompts()
    batch = ps.batch()
    got = component_graph(model, adapter_for(model.config), batch, ablation)
    ref = reference_graph(model, batch, ablation, recompute_clean=False)
    assert len(got.src) > 0
    for e, (u, v) in enumerate(zip(got.src, got.dst)):
        for m, vals in got.values.items():
            expected = ref[(u, v)][m]
            if v != "logits" and m in ("kl", "dloss"):
                assert torch.isnan(vals[e]).all()
                continue
            assert torch.allclose(vals[e], expected, atol=1e-5, rtol=0), (arch, u, v, m, vals[e], expected)
    # the produced edges are exactly the pairs whose target the ablation influences
    influenced = {pair for pair, r in ref.items() if r["weight"].abs().max() > 1e-9}
    assert set(zip(got.src, got.dst)) == influenced


@pytest.mark.parametrize("arch", ARCHS)
def test_no_forbidden_edge(arch):
    ad = adapter_for(_model(arch).config)
    edges = ad.graph_edges()
    assert len(edges) == len(set(edges))
    for u, v in edges:
        (uk, ul), (vk, vl) = node_kind(u), node_kind(v)
        assert u != "logits" and v != "embed"
        assert vl > ul or (vl == ul and uk == "head" and vk == "mlp"), (u, v)
        if vl == ul:  # only a sequential residual lets an MLP read its own layer's heads
            assert not ad.parallel
    heads_to_own_mlp = [(u, v) for u, v in edges if node_kind(u)[1] == node_kind(v)[1]]
    assert (len(heads_to_own_mlp) == 0) == (arch == "neox")


def test_component_only_run_matches_the_full_run(arch_model):
    arch, model = arch_model
    batch = induction_prompts(3, 12, seed=2, vocab=VOCAB).batch()
    ad = adapter_for(model.config)
    full = component_graph(model, ad, batch)
    comp = component_graph(model, ad, batch, logits=False)
    assert "logits" not in comp.dst
    keep = [i for i, v in enumerate(full.dst) if v != "logits"]
    assert comp.src == [full.src[i] for i in keep]
    assert torch.allclose(comp.values["weight"], full.values["weight"][keep], atol=1e-6)


def test_unsupported_architecture_is_named():
    with pytest.raises(TdwError, match="supported: gpt2, gpt_neox, llama"):
        adapter_for({"model_type": "bert"})
