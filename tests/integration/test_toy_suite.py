"""The toy suite: Pythia-like schedule, determinism, and the induction transition."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from ingest.sources import file_hash, open_source
from ingest.toy.corpus import Corpus, CorpusSpec
from ingest.toy.train import SUITE, ToyModel, TrainSpec, schedule, train_suite


def test_schedule_is_log_spaced_then_even():
    assert schedule(1536, 32) == [0, 1, 2, 4, 8, 16] + list(range(32, 1537, 32))
    assert schedule(1024, 32) == [0, 1, 2, 4, 8, 16] + list(range(32, 1025, 32))


def test_schedule_is_dense_in_its_window_and_log_spaced_outside():
    steps = schedule(4096, 32, (100, 700))
    inside = [s for s in steps if 100 <= s <= 700]
    assert inside == list(range(128, 673, 32))  # every multiple of 32 in the window
    outside = [s for s in steps if not 100 <= s <= 700]
    assert outside == [0, 1, 2, 4, 8, 16, 32, 64, 1024, 2048, 4096]


def test_training_is_deterministic(tmp_path):
    spec = TrainSpec(total_steps=4, every=2)
    tiny = (ToyModel("t", 1, 16, 2, seed=3), ToyModel("s", 2, 16, 2, seed=4, parallel_residual=False, lr=1e-3))
    a = train_suite(tmp_path / "a", spec, tiny, progress=False)
    b = train_suite(tmp_path / "b", spec, tiny, progress=False)
    assert a == b
    for name in ("t", "s"):
        for step in (0, 1, 2, 4):
            files = [tmp_path / x / name / f"step{step}" / "model.safetensors" for x in "ab"]
            assert file_hash([files[0]]) == file_hash([files[1]])
    config = json.loads((tmp_path / "a" / "s" / "step4" / "config.json").read_text())
    assert config["use_parallel_residual"] is False and config["num_hidden_layers"] == 2
    assert a[1]["model"]["lr"] == 1e-3


def induction_loss(model, prompts: torch.Tensor) -> float:
    """Mean next-token loss on the repeated half, from its second token on."""
    with torch.no_grad():
        logp = model(prompts).logits.log_softmax(-1)  # [batch, pos, vocab]
    nll = -logp[:, :-1].gather(-1, prompts[:, 1:, None])[..., 0]  # [batch, pos - 1]
    half = prompts.shape[1] // 2
    return float(nll[:, half:].mean())


def test_checkpoints_span_the_induction_transition(toy_suite):
    for m in SUITE:
        meta = json.loads((toy_suite / m.name / "suite.json").read_text())
        assert len(meta["schedule"]) >= 32 and meta["corpus"]["seed"] == CorpusSpec().seed
        corpus = Corpus(CorpusSpec(**meta["corpus"]))
        prompts = torch.from_numpy(corpus.induction(np.random.default_rng(2024), 64))
        source = open_source(f"toy/{m.name}", toy_root=toy_suite)
        steps = meta["schedule"]
        early = [induction_loss(source.checkpoint(s).load_model(), prompts) for s in steps[:6]]
        late = induction_loss(source.checkpoint(steps[-1]).load_model(), prompts)
        chance = math.log(meta["corpus"]["vocab_size"])
        assert min(early) > 0.9 * chance, (m.name, early)
        assert late < 0.5 * chance, (m.name, late)
        # complete well before the end: the last quarter of training is already past it
        tail = [s for s in steps if s >= 0.75 * steps[-1]]
        assert induction_loss(source.checkpoint(tail[0]).load_model(), prompts) < 0.25 * chance, m.name
        gaps = np.diff([s for s in steps if s >= 32])
        assert gaps.max() <= 32, "checkpoints at most 32 steps apart across the transition"
