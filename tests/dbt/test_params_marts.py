"""The parameter-dynamics marts on the built toy warehouse, against independent computations
from the checkpoints themselves: Hugging Face's own loss, numpy's matrix_rank and norms,
Sarle's coefficient from numpy moments, and the stationarity rule re-applied in pandas."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from ingest.evalsets import EvalSet
from ingest.probes.covariance import gaussian_batch
from ingest.sources import open_source
from tests.conftest import TOY_MODELS

MODEL = TOY_MODELS[0]


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def source(toy_suite):
    return open_source(MODEL, toy_root=toy_suite)


def steps_of(con, table: str, model: str = MODEL) -> list[int]:
    return [
        r[0]
        for r in con.execute(f"select distinct step from {table} where model_id = ? order by step", [model]).fetchall()
    ]


def test_forward_perplexity_is_hf_loss_on_stored_eval_set(con, source):
    step = steps_of(con, "marts.fct_perplexity")[-1]
    dataset, h, ppl = con.execute(
        "select dataset, eval_hash, perplexity from marts.fct_perplexity "
        "where model_id = ? and step = ? and method = 'forward'",
        [MODEL, step],
    ).fetchone()
    ids = con.execute(
        "select token_ids from marts.dim_eval_set where dataset = ? and eval_hash = ? order by item", [dataset, h]
    ).fetchall()
    items = [np.array(r[0], dtype=np.int64) for r in ids]
    assert EvalSet(dataset, "toy", tuple(items)).hash == h  # the stored ids are the set
    model = source.checkpoint(step).load_model()
    with torch.no_grad():
        x = torch.from_numpy(np.stack(items))  # toy items share a length
        loss = float(model(input_ids=x, labels=x).loss)
    assert ppl == pytest.approx(math.exp(loss), rel=1e-4)
    first = con.execute(
        "select perplexity from marts.fct_perplexity where model_id = ? and method = 'forward' order by step limit 1",
        [MODEL],
    ).fetchone()[0]
    assert first > 1.5 * ppl  # training lowered it (the held-out Markov text: 258 -> 141 on the toy suite)


def test_causal_unmasking_rows_cover_every_prefix(con):
    step = steps_of(con, "marts.fct_perplexity")[0]
    n_items, n_tok, ppl = con.execute(
        "select n_items, n_tokens, perplexity from marts.fct_perplexity "
        "where model_id = ? and step = ? and method = 'causal_unmasking'",
        [MODEL, step],
    ).fetchone()
    rows = con.execute(
        "select item, prefix_len, n_tokens, nll_sum from staging.stg_perplexity_items "
        "where model_id = ? and step = ? and method = 'causal_unmasking'",
        [MODEL, step],
    ).df()
    lengths = con.execute("select item, n_tokens from marts.dim_eval_set order by item").df().set_index("item")
    for item, g in rows.groupby("item"):
        t = int(lengths.loc[item, "n_tokens"])
        assert sorted(g.prefix_len) == list(range(1, t)) and (g.n_tokens == t - g.prefix_len).all()
    assert n_items == len(rows) and n_tok == rows.n_tokens.sum()
    assert ppl == pytest.approx(math.exp(rows.nll_sum.sum() / rows.n_tokens.sum()), rel=1e-9)


def test_covariance_rank_is_numpy_matrix_rank(con, source):
    step = steps_of(con, "marts.fct_covariance_rank")[-1]
    got = con.execute(
        "select batch_size, tolerance, rank from marts.fct_covariance_rank "
        "where model_id = ? and step = ? order by batch_size, tolerance",
        [MODEL, step],
    ).df()
    w = source.checkpoint(step).tensors().read("lm_head.weight").astype(np.float64)  # [vocab, d]
    for b in (16, 64):
        c = np.cov(w @ gaussian_batch(w.shape[1], b, 0))  # [vocab, vocab]
        sel = got[got.batch_size == b]
        assert list(sel.tolerance.round(1)) == [round(0.1 * i, 1) for i in range(1, 11)]
        expect = [np.linalg.matrix_rank(c, tol=t) for t in sel.tolerance]
        assert sel["rank"].tolist() == expect
    diffs = con.execute(
        "select step, tolerance, rank, rank_diff from marts.fct_covariance_rank "
        "where model_id = ? and batch_size = 64 order by tolerance, step",
        [MODEL],
    ).df()
    for _, g in diffs.groupby("tolerance"):
        np.testing.assert_array_equal(g.rank_diff.to_numpy()[1:], np.diff(g["rank"].to_numpy()))


def test_displacement_is_numpy_norm_between_ingested_checkpoints(con, source):
    ingested = steps_of(con, "marts.fct_perplexity")
    d = con.execute(
        "select step, prev_step, disp, rel_disp, param_kind, layer from marts.fct_displacement "
        "where model_id = ? and tensor_name = 'gpt_neox.layers.1.mlp.dense_4h_to_h.weight' "
        "order by step",
        [MODEL],
    ).df()
    assert d.step.tolist() == ingested[1:] and d.prev_step.tolist() == ingested[:-1]
    assert set(d.param_kind) == {"mlp"} and set(d.layer) == {1}
    row = d.iloc[len(d) // 2]
    a = source.checkpoint(int(row.step)).tensors().read("gpt_neox.layers.1.mlp.dense_4h_to_h.weight")
    b = source.checkpoint(int(row.prev_step)).tensors().read("gpt_neox.layers.1.mlp.dense_4h_to_h.weight")
    ref = np.linalg.norm(a.astype(np.float64) - b)
    assert row.disp == pytest.approx(ref, rel=1e-9)
    assert row.rel_disp == pytest.approx(ref / np.linalg.norm(b.astype(np.float64)), rel=1e-9)
    kinds = {r[0] for r in con.execute("select distinct param_kind from marts.fct_displacement").fetchall()}
    assert {"attention", "mlp", "layernorm", "embedding", "unembedding"} <= kinds


def test_stationarity_rule_reapplied(con):
    rates = con.execute("select model_id, tensor_name, step, rel_disp_per_step as r from marts.fct_displacement").df()
    got = con.execute("select * from marts.fct_stationarity").df().set_index(["model_id", "tensor_name"])
    assert len(got) == rates.groupby(["model_id", "tensor_name"]).ngroups
    for key, g in list(rates.groupby(["model_id", "tensor_name"]))[:12]:
        g = g.sort_values("step").dropna(subset=["r"])
        thr = 0.2 * g.r.max()
        above = g.step[g.r > thr]
        after = g.step[g.step > (above.max() if len(above) else -1)]
        row = got.loc[key]
        expect = int(after.min()) if len(after) and not row.zero_initialised else None
        assert row.threshold == pytest.approx(thr)
        assert (pd.isna(row.stationary_step) and expect is None) or row.stationary_step == expect


def test_no_zero_initialised_tensor_is_called_stationary(con, source):
    """A tensor that is all zeros in the first ingested checkpoint file (a bias) has a first
    relative displacement over a zero norm: it must be flagged, never called stationary."""
    first = steps_of(con, "marts.fct_displacement")[0]
    ckpt = source.checkpoint(min(first, *steps_of(con, "marts.dim_checkpoint")))
    got = (
        con.execute(
            "select tensor_name, zero_initialised, stationary_step from marts.fct_stationarity where model_id = ?",
            [MODEL],
        )
        .df()
        .set_index("tensor_name")
    )
    zeros = [n for n in got.index if not np.any(ckpt.tensors().read(n))]
    assert zeros, "the toy has zero-initialised biases"
    for name in zeros:
        assert got.loc[name, "zero_initialised"] and pd.isna(got.loc[name, "stationary_step"]), name
    assert got.stationary_step.notna().any()


def test_bimodality_is_sarle_coefficient(con, source):
    step = steps_of(con, "marts.fct_weight_bimodality")[-1]
    bc = con.execute(
        "select bimodality_coefficient from marts.fct_weight_bimodality "
        "where model_id = ? and tensor_name = 'lm_head.weight' and step = ?",
        [MODEL, step],
    ).fetchone()[0]
    w = source.checkpoint(step).tensors().read("lm_head.weight").astype(np.float64).ravel()
    n, z = w.size, (w - w.mean()) / w.std()
    g, k = (z**3).mean(), (z**4).mean() - 3
    assert bc == pytest.approx((g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), rel=1e-6)


def test_phase_alignment_one_row_per_model(con):
    al = con.execute("select * from marts.fct_phase_alignment order by model_id").df()
    assert sorted(al.model_id) == sorted(TOY_MODELS)
    bif = (
        con.execute(
            "select model_id, peak_step, last_step, fall_ratio from marts.fct_bifurcation "
            "where tensor_name = 'lm_head.weight'"
        )
        .df()
        .set_index("model_id")
    )
    steps = con.execute("select model_id, step, probes from marts.dim_checkpoint").df()
    for _, r in al.iterrows():
        b = bif.loc[r.model_id]
        censored = b.peak_step >= b.last_step or b.fall_ratio >= 0.99
        assert r.tensor_name == "lm_head.weight"
        assert (
            (pd.isna(r.msd_peak_step) and r.msd_peak_status.startswith("censored"))
            if censored
            else (r.msd_peak_step == b.peak_step and r.msd_peak_status == "peak")
        )
        if not censored:
            assert r.perplexity_minus_msd == r.perplexity_drop_step - r.msd_peak_step
        present = [
            r[c]
            for c in (
                "msd_peak_step",
                "perplexity_drop_step",
                "unmasking_drop_step",
                "covariance_drop_step",
                "stationarity_step",
            )
            if not pd.isna(r[c])
        ]
        assert r.spread_steps == max(present) - min(present) if present else pd.isna(r.spread_steps)
        assert r.n_signals == len(present)
        assert not pd.isna(r.perplexity_drop_step) and not pd.isna(r.stationarity_step)
        for signal, probe in (("perplexity_drop", "perplexity"), ("stationarity", "displacement")):
            step = r[signal + "_step"]
            own = sorted(
                s for s, p in steps[steps.model_id == r.model_id][["step", "probes"]].values if probe in list(p)
            )
            i = own.index(step)
            prev, nxt = r[signal + "_prev_step"], r[signal + "_next_step"]
            assert prev == own[i - 1] if i else pd.isna(prev)
            assert nxt == own[i + 1] if i + 1 < len(own) else pd.isna(nxt)
