"""The graph probe through the ingest pipeline on tiny seeded checkpoints: its tables, the
three tasks, and bad input (clear errors, nothing already loaded lost)."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
import torch

from ingest.errors import TdwError
from ingest.probes.graph.tasks import induction_prompts, markov_prompts, read_prompt_texts
from warehouse.pipeline import ingest


def _save(folder, seed: int, vocab: int = 256, model_type: str = "gpt_neox") -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    if model_type == "gpt_neox":
        model = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                max_position_embeddings=32,
                rotary_pct=0.25,
                tie_word_embeddings=False,
                bos_token_id=0,
                eos_token_id=0,
            )
        )
    else:
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0)
        )
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph-run")
    for i, step in enumerate((0, 8)):
        _save(root / f"step{step}", seed=i)
    return root


PARAMS = {"n_prompts": 3, "seq_len": 16}


def _ingest(run_dir, wh, **params):
    return ingest(str(run_dir), probes="graph", warehouse=wh, progress=False, params={"graph": {**PARAMS, **params}})


def test_probe_loads_every_task_and_ablation(run_dir, tmp_path):
    text = tmp_path / "prompts.jsonl"
    text.write_text("\n".join(json.dumps({"text": t}) for t in ("hello graph", "abc abc abc", "x y")) + "\n")
    wh = tmp_path / "wh.duckdb"
    result = _ingest(run_dir, wh, tasks="induction,markov,text", ablations="zero,mean", text_file=str(text))
    assert result.ok, result.summary()
    con = duckdb.connect(str(wh), read_only=True)
    per_slice = con.sql(
        "select step, task, ablation, count(*) n, count(kl) n_kl, min(n_prompts) np "
        "from raw.graph_edges group by all order by all"
    ).fetchall()
    assert len(per_slice) == 2 * 3 * 2
    # 2 layers x (4 heads + MLP) + embed + logits, parallel residual: 11 + 6*4 + 6 + 5 = 46 edges
    assert {r[3] for r in per_slice} == {46} and {r[4] for r in per_slice} == {11}
    assert {r[5] for r in per_slice} == {3}
    prompts = con.sql(
        "select task, prompt_index, token_ids, measure_start, measure_end from raw.graph_prompts "
        "where step = 0 and ablation = 'zero' order by task, prompt_index"
    ).fetchall()
    text_ids = [r[2] for r in prompts if r[0] == "text"]
    assert text_ids[0] == list(b"hello graph")  # byte tokens: the toy suite has no tokenizer
    assert [r[4] for r in prompts if r[0] == "text"] == [10, 10, 2]
    induction = [r for r in prompts if r[0] == "induction"]
    assert induction[0][2][:8] == induction[0][2][8:] and induction[0][3:] == (8, 15)
    con.close()


def test_prompt_sets_are_seeded_and_reproducible():
    a, b = induction_prompts(4, 12, seed=5, vocab=50), induction_prompts(6, 12, seed=5, vocab=50)
    assert all(np.array_equal(x, y) for x, y in zip(a.prompts, b.prompts))  # prompt i depends on (seed, i)
    m = markov_prompts(3, 20, seed=1, corpus=None)
    assert all(p.shape == (20,) and p.max() < 256 for p in m.prompts)
    assert (m.measure_end == 19).all()


@pytest.fixture(scope="module")
def loaded(run_dir, tmp_path_factory):
    wh = tmp_path_factory.mktemp("graph-wh") / "wh.duckdb"
    assert _ingest(run_dir, wh).ok
    return wh


@pytest.mark.parametrize(
    "params,message",
    [
        ({"tasks": "sorting"}, "unknown graph task 'sorting'"),
        ({"ablations": "resample"}, "unknown ablation 'resample'"),
        ({"tasks": "text"}, "needs a file"),
        ({"tasks": "text", "text_file": "/nonexistent/prompts.txt"}, "does not exist"),
        ({"seq_len": 64}, "longer than the model's context of 32"),
    ],
)
def test_bad_input_fails_fast_and_keeps_what_was_loaded(run_dir, loaded, params, message):
    def count() -> tuple:
        con = duckdb.connect(str(loaded), read_only=True)
        try:
            return con.execute("select count(*), sum(weight) from raw.graph_edges").fetchone()
        finally:
            con.close()

    before = count()
    with pytest.raises(TdwError, match=message):
        _ingest(run_dir, loaded, **params)
    assert count() == before and before[0] > 0


def test_text_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(TdwError, match="is empty"):
        read_prompt_texts(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(TdwError, match="bad.jsonl:2: not a JSON line"):
        read_prompt_texts(bad)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(TdwError, match="cannot read task file"):
        read_prompt_texts(binary)


def test_long_text_prompt_and_unsupported_architecture(tmp_path):
    run = tmp_path / "run"
    _save(run / "step0", seed=0)
    long = tmp_path / "long.txt"
    long.write_text("x" * 40 + "\n")
    with pytest.raises(TdwError, match="prompt 0 has 40 tokens, longer than the model's context of 32"):
        ingest(
            str(run),
            probes="graph",
            warehouse=tmp_path / "wh.duckdb",
            progress=False,
            params={"graph": {"tasks": "text", "text_file": str(long)}},
        )
    cfg = json.loads((run / "step0" / "config.json").read_text())
    cfg["model_type"] = "bert"
    (run / "step0" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TdwError, match="no adapter for architecture 'bert'; supported: gpt2, gpt_neox, llama"):
        ingest(str(run), probes="graph", warehouse=tmp_path / "wh.duckdb", progress=False)
