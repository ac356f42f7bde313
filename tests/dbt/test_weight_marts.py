"""The weight marts against numpy computations of METHODS §B on the same checkpoints.

One warehouse is built from synthetic checkpoints: a 256 x 256 tensor (MSD exact: every
value is kept) and 1024 x 256 ones sampled at 2^17 indices (MSD estimated; the documented
bound is 1% relative error at every step).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from tests.conftest import write_checkpoints
from warehouse.dbt import build
from warehouse.pipeline import ingest

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 96, 128]
SHAPES = {
    "embed_out.weight": (1024, 256),
    "gpt_neox.embed_in.weight": (1024, 256),
    "gpt_neox.layers.0.attention.dense.weight": (256, 256),
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts") / "run"
    tensors = write_checkpoints(root, STEPS, SHAPES, seed=3)
    wh = tmp_path_factory.mktemp("wh") / "w.duckdb"
    result = ingest(
        str(root),
        warehouse=wh,
        probes="weights",
        progress=False,
        params={"weights": {"tensors": "unembed,embed,*.attention.dense.weight", "msd_sample": 1 << 17}},
    )
    assert result.ok, result.summary()
    build(wh)
    con = duckdb.connect(str(wh), read_only=True)
    yield con, tensors, result.model_id
    con.close()


def numpy_msd(tensors: dict, name: str) -> np.ndarray:
    """MSD(tau) = 1/(N-1) sum_k (S_tau,k - mean_k S_tau,k)^2, S the cumulative sum in step order."""
    s = np.zeros(tensors[STEPS[0]][name].size)
    out = []
    for step in STEPS:
        s = s + tensors[step][name].astype(np.float64).ravel()
        out.append(np.var(s, ddof=1))
    return np.array(out)


@pytest.mark.parametrize(
    "file_name, name, rel",
    [
        ("gpt_neox.layers.0.attention.dense.weight", "gpt_neox.layers.0.attention.dense.weight", 1e-5),  # exact
        ("embed_out.weight", "lm_head.weight", 0.01),  # sampled: 2^17 of 2^18
        ("gpt_neox.embed_in.weight", "gpt_neox.embed_in.weight", 0.01),
    ],
)
def test_msd_matches_the_definition(warehouse, file_name, name, rel):
    con, tensors, model = warehouse
    got = con.execute(
        "select step, msd, is_exact from marts.fct_msd where model_id = ? and tensor_name = ? order by step",
        [model, name],
    ).fetchall()
    assert [g[0] for g in got] == STEPS
    assert all(g[2] == (rel < 0.01) for g in got)
    expected = numpy_msd(tensors, file_name)
    np.testing.assert_allclose([g[1] for g in got], expected, rtol=rel)
    peak, status = con.execute(
        "select peak_step, peak_status from marts.fct_bifurcation where model_id = ? and tensor_name = ?", [model, name]
    ).fetchone()
    assert peak == STEPS[int(np.argmax(expected))]
    assert (status == "no peak: still rising") == (peak == STEPS[-1])


def test_time_demeaned_msd_is_the_variant_and_falls_to_zero(warehouse):
    """Demeaning each parameter over time makes every cumulative sum return to 0 at the last
    checkpoint: the variant always ends at 0, whatever the weights did (exact tensor)."""
    con, tensors, model = warehouse
    name = "gpt_neox.layers.0.attention.dense.weight"
    got = np.array(
        [
            r[0]
            for r in con.execute(
                "select msd_time_demeaned from marts.fct_msd where model_id = ? and tensor_name = ? order by step",
                [model, name],
            ).fetchall()
        ]
    )
    w = np.stack([tensors[s][name].astype(np.float64).ravel() for s in STEPS])
    cum = np.cumsum(w - w.mean(0), axis=0)
    expected = cum.var(axis=1, ddof=1)
    np.testing.assert_allclose(got[:-1], expected[:-1], rtol=1e-5)
    assert abs(got[-1]) < 1e-9 * got.max()


def test_density_uses_shared_edges_and_integrates_to_one(warehouse):
    con, tensors, model = warehouse
    edges = con.execute(
        "select count(distinct (bin_lo, bin_hi)), count(distinct step), "
        "min(bin_lo), max(bin_hi) from marts.fct_weight_density "
        "where model_id = ? and tensor_name = 'lm_head.weight'",
        [model],
    ).fetchone()
    assert edges[0] == 100 and edges[1] == len(STEPS)
    allv = np.concatenate([tensors[s]["embed_out.weight"].ravel() for s in STEPS])
    assert edges[2] == pytest.approx(allv.min()) and edges[3] == pytest.approx(allv.max())
    integral = con.execute(
        "select step, sum(density * (bin_hi - bin_lo)), sum(count) from marts.fct_weight_density "
        "where model_id = ? group by tensor_name, step",
        [model],
    ).fetchall()
    for _, total, _count in integral:
        assert total == pytest.approx(1.0, rel=1e-9)
    # counts agree with numpy's histogram on the same edges, up to values within a bucket (2^-11) of an edge
    step = STEPS[-1]
    got = np.array(
        con.execute(
            "select count from marts.fct_weight_density where model_id = ? and "
            "tensor_name = 'lm_head.weight' and step = ? order by bin_index",
            [model, step],
        ).fetchall()
    ).ravel()
    ref, _ = np.histogram(tensors[step]["embed_out.weight"], bins=100, range=(allv.min(), allv.max()))
    assert got.sum() == ref.sum()
    assert np.abs(got - ref).sum() / ref.sum() < 0.005


def test_moments_and_slicing_columns(warehouse):
    con, tensors, model = warehouse
    rows = con.execute(
        "select tensor_name, layer, param_kind, step, mean, std, l2_norm from marts.fct_weight_moments "
        "where model_id = ? order by tensor_name, step",
        [model],
    ).fetchall()
    kinds = {(r[0], r[1], r[2]) for r in rows}
    assert kinds == {
        ("gpt_neox.embed_in.weight", None, "embedding"),
        ("lm_head.weight", None, "unembedding"),
        ("gpt_neox.layers.0.attention.dense.weight", 0, "attention"),
    }
    r = next(r for r in rows if r[0] == "lm_head.weight" and r[3] == 8)
    x = tensors[8]["embed_out.weight"].astype(np.float64)
    # the probe sums float32 deviations per cache-sized chunk and merges them in float64
    # (ingest/probes/weights.py documents ~1e-6 relative): std and norm agree to that bound
    assert r[4] == pytest.approx(x.mean(), rel=1e-9)
    assert (r[5], r[6]) == pytest.approx((x.std(), np.linalg.norm(x)), rel=1e-6)


def test_dim_checkpoint(warehouse):
    con, _, model = warehouse
    rows = con.execute(
        "select step, revision, source, checkpoint_index, length(content_hash) "
        "from marts.dim_checkpoint where model_id = ? order by step",
        [model],
    ).fetchall()
    assert [r[0] for r in rows] == STEPS
    assert rows[3] == (4, "step4", "local", 3, 64)
