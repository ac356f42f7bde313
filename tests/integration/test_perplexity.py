"""Perplexity probe against the Hugging Face model's own loss, item by item, unpadded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ingest.errors import TdwError
from ingest.probes.perplexity import PerplexityProbe, aggregate, forward_nll
from ingest.sources import LocalSource


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest, and far faster on a busy machine."""
    from ingest.probes.perplexity import torch_threads

    with torch_threads(1):
        yield


def tiny_model(kind: str, seed: int = 0):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "neox":
        cfg = GPTNeoXConfig(
            vocab_size=256,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            rotary_pct=0.25,
            tie_word_embeddings=False,
        )
        model = GPTNeoXForCausalLM(cfg)
    else:
        cfg = LlamaConfig(
            vocab_size=256,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # sharper than the init so the NLLs differ per item
        model.get_output_embeddings().weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A local source with two checkpoints of a tiny NeoX model; step 1 has NaN weights."""
    root = tmp_path_factory.mktemp("ppl")
    model = tiny_model("neox")
    model.save_pretrained(root / "step0")
    with torch.no_grad():
        model.gpt_neox.layers[0].mlp.dense_h_to_4h.weight[0, 0] = float("nan")
    model.save_pretrained(root / "step1")
    return LocalSource(root, "test/ppl")


def hf_reference(model, items) -> tuple[float, int]:
    """Σ NLL and token count from the model's own loss, one unpadded item at a time."""
    total, n = 0.0, 0
    with torch.no_grad():
        for x in items:
            ids = torch.from_numpy(x)[None]
            total += float(model(input_ids=ids, labels=ids).loss) * (x.size - 1)
            n += x.size - 1
    return total, n


@pytest.mark.parametrize("kind", ["neox", "llama"])
def test_forward_matches_hf_loss_with_padding(kind):
    model = tiny_model(kind, seed=1)
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, size=n) for n in (17, 5, 30, 2, 11)]
    per_item = forward_nll(model, items, batch_size=5)  # one batch, heavily padded
    for x, (nll, n) in zip(items, per_item):
        ref, n_ref = hf_reference(model, [x])
        assert n == n_ref and nll == pytest.approx(ref, rel=1e-5)
    other = forward_nll(model, items, batch_size=2)  # other paddings, same answer
    assert [r[0] for r in per_item] == pytest.approx([r[0] for r in other], rel=1e-5)
    total, n = hf_reference(model, items)
    agg = aggregate(np.array([r[0] for r in per_item]), np.array([r[1] for r in per_item]))
    assert agg["perplexity"] == pytest.approx(math.exp(total / n), rel=1e-5)
    assert len({round(r[0] / r[1], 4) for r in per_item}) == len(items)


def test_probe_rows_eval_set_and_nonfinite(suite):
    probe = PerplexityProbe()
    params = probe.params(n_items=6, item_len=12, unmasking_items=2, batch_size=4)
    ck0 = suite.checkpoint(0)
    probe.validate(ck0, params)
    ctx = probe.context(suite, [0, 1], params)
    out = probe.run(ck0, params, ctx)
    ppl = out["perplexity"].set_index("method")
    es = ctx["eval_set"]
    assert set(ppl.index) == {"forward", "causal_unmasking"}
    assert (ppl.eval_hash == es.hash).all() and (ppl.dataset == es.name).all()
    model = ck0.load_model()
    total, n = hf_reference(model, list(es.items))
    assert ppl.loc["forward", "n_tokens"] == n == 6 * 11
    assert ppl.loc["forward", "perplexity"] == pytest.approx(math.exp(total / n), rel=1e-5)
    assert ppl.loc["causal_unmasking", "n_tokens"] == 2 * sum(range(1, 12))
    items = out["perplexity_items"]
    assert len(items[items.method == "causal_unmasking"]) == 2 * 11
    ev = out["eval_sets"]
    assert [list(t) for t in ev.token_ids] == [x.tolist() for x in es.items]
    bad = probe.run(suite.checkpoint(1), params, ctx)["perplexity"]
    assert (bad.n_nonfinite > 0).all() and bad.perplexity.isna().all() and (bad.n_items == 0).all()


@pytest.mark.parametrize("how", [{"dataset": "toy_repeats"}, {"eval_set": "toy_repeats"}])
def test_built_in_repeated_segments_set(suite, how):
    """The repeated-segment set by either parameter: R R items, named in the marts."""
    probe = PerplexityProbe()
    params = probe.params(n_items=4, methods="forward", **how)
    probe.validate(suite.checkpoint(0), params)
    es = probe.context(suite, [0], params)["eval_set"]
    assert es.name == how.get("dataset", "toy_repeats_s20240") and es.spec == "toy_repeats"
    assert len(es.items) == 4 and all(x.size == 32 and (x[:16] == x[16:]).all() for x in es.items)
    out = probe.run(suite.checkpoint(0), params, {"eval_set": es})["perplexity"]
    assert list(out.dataset) == [es.name] and out.n_tokens.iloc[0] == 4 * 31


def test_probe_bad_parameters(suite, tmp_path):
    probe = PerplexityProbe()
    with pytest.raises(TdwError, match="unknown perplexity method"):
        probe.validate(suite.checkpoint(0), probe.params(methods="forward,beam"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(TdwError, match="is empty"):
        probe.validate(suite.checkpoint(0), probe.params(eval_set=str(empty)))
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n4 5 256\n")
    with pytest.raises(TdwError, match="token id 256 outside"):
        probe.validate(suite.checkpoint(0), probe.params(eval_set=str(ids)))


def test_text_file_uses_the_checkpoints_own_tokenizer(suite, tmp_path):
    """A tokenizer saved with the checkpoint is the one used; the file is read line by line."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ingest.evalsets import eval_set_for

    vocab = {w: i for i, w in enumerate(["[UNK]", "the", "cat", "sat", "on", "mat"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ck = suite.checkpoint(0)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(ck.folder)
    try:
        text = tmp_path / "sentences.txt"
        text.write_text("the cat sat on the mat\n\nthe mat sat\n")
        es = eval_set_for(ck, PerplexityProbe().params(eval_set=str(text)))
        assert [x.tolist() for x in es.items] == [[1, 2, 3, 4, 1, 5], [1, 5, 3]]
        assert es.name == "sentences.txt"
    finally:
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (ck.folder / f).unlink(missing_ok=True)


def test_chunked_loss_and_the_logits_fallback_match_hf(monkeypatch):
    """Chunks of a few positions (the unembedding applied piecewise) and the path through the
    model's own logits (for models that transform logits) give the HF loss too."""
    import ingest.probes.perplexity as ppl

    model = tiny_model("neox", seed=2)
    rng = np.random.default_rng(1)
    items = [rng.integers(0, 256, size=n) for n in (9, 23, 4, 16)]
    refs = [hf_reference(model, [x]) for x in items]
    monkeypatch.setattr(ppl, "VOCAB_BLOCK", 100)  # 3 vocabulary blocks, one partial
    monkeypatch.setattr(ppl, "LOGIT_CHUNK", 300)  # 3 positions per chunk
    chunked = forward_nll(model, items, batch_size=4)
    monkeypatch.setattr(ppl, "_body_and_head", lambda m: None)
    fallback = forward_nll(model, items, batch_size=3)
    for (ref, n), a, b in zip(refs, chunked, fallback):
        assert a[1] == b[1] == n
        assert a[0] == pytest.approx(ref, rel=1e-5) and b[0] == pytest.approx(ref, rel=1e-5)
