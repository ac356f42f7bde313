"""Causal unmasking with a KV cache and batched prefixes against the slow reference loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ingest.probes.perplexity import aggregate
from ingest.probes.unmasking import _groups, unmask_cached, unmask_naive


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest, and far faster on a busy machine."""
    from ingest.probes.perplexity import torch_threads

    with torch_threads(1):
        yield


def tiny_model(kind: str, seed: int = 0):
    """A seeded 2-layer model with a sharpened unembedding (so greedy choices are not ties)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    common = dict(
        vocab_size=256,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    if kind == "gpt2":  # learned positions: only 16 of them
        model = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=16))
    elif kind == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(rotary_pct=0.25, tie_word_embeddings=False, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common))
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20.0)
    return model.eval()


def check_same(ref, got, atol=2e-5):
    assert [(c.item, c.prefix_len) for c in ref] == [(c.item, c.prefix_len) for c in got]
    for a, b in zip(ref, got):
        assert np.array_equal(a.tokens, b.tokens), (a.item, a.prefix_len)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=atol, rtol=0)


@pytest.mark.parametrize("kind", ["neox", "llama", "gpt2"])
def test_cached_equals_naive_loop(kind):
    model = tiny_model(kind, seed=2)
    rng = np.random.default_rng(3)
    items = [rng.integers(0, 256, size=n) for n in (9, 2, 6, 12)]
    ref = unmask_naive(model, items)
    assert len(ref) == sum(x.size - 1 for x in items)
    assert all(c.tokens.size == items[c.item].size - c.prefix_len for c in ref)
    check_same(ref, unmask_cached(model, items, max_rows=512))  # everything in one batch
    check_same(ref, unmask_cached(model, items, max_rows=8))  # several groups
    # the generations are not trivial: tokens vary across prefixes and are not all the input
    gen = np.concatenate([c.tokens for c in ref])
    assert len(set(gen.tolist())) > 3


def test_perplexity_of_generated_tokens():
    model = tiny_model("neox", seed=4)
    rng = np.random.default_rng(5)
    items = [rng.integers(0, 256, size=n) for n in (7, 5)]
    comps = unmask_cached(model, items)
    lps = np.concatenate([c.logprobs for c in unmask_naive(model, items)])
    agg = aggregate(np.array([-c.logprobs.sum() for c in comps]), np.array([c.tokens.size for c in comps]))
    assert agg["n_tokens"] == lps.size == 6 * 7 / 2 + 4 * 5 / 2
    assert agg["perplexity"] == pytest.approx(math.exp(-lps.mean()), rel=1e-5)


def test_groups_keep_items_whole():
    items = [np.zeros(n, dtype=np.int64) for n in (5, 5, 20, 3)]
    assert _groups(items, 8) == [[0, 1], [2], [3]]
    assert _groups(items, 100) == [[0, 1, 2, 3]]
