"""The LLC marts on the built toy warehouse (the llc probe with the fixture's tiny
parameters, LLC_TINY): fct_llc agrees with the per-chain rows, one hyperparameter hash per
series, never a NaN; the llc stages tile each model's checkpoints in fct_phases, and
fct_phase_alignment's llc columns are the first stage boundary with its neighbours; the
boundaries are recomputed from fct_llc by analysis.llc_stages."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from analysis.llc_stages import llc_stages
from tests.conftest import TOY_MODELS


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


def test_fct_llc_is_the_chains_mean_with_one_hash_per_series(con):
    rows = con.execute(
        "select f.model_id, f.step, f.llc_mean, f.llc_std, f.n_chains, f.diverged, f.params_hash, "
        "avg(c.llc), stddev_samp(c.llc), count(c.chain_index) "
        "from marts.fct_llc f join staging.stg_llc_chains c using (model_id, step, dataset) group by all"
    ).fetchall()
    assert {r[0] for r in rows} == set(TOY_MODELS)
    for _, _, mean, std, n, diverged, _, cmean, cstd, count in rows:
        assert count == n and not diverged
        assert np.isfinite(mean) and mean == pytest.approx(cmean) and std == pytest.approx(cstd)
    hashes = con.execute("select model_id, count(distinct params_hash) from marts.fct_llc group by 1").fetchall()
    assert all(h == 1 for _, h in hashes)


@pytest.mark.parametrize("model_id", TOY_MODELS)
def test_llc_stages_tile_the_checkpoints_and_line_up(con, model_id):
    llc = con.execute(
        "select step, llc_mean, coalesce(llc_se, 0) from marts.fct_llc where model_id = ? order by step", [model_id]
    ).fetchall()
    steps, values, se = (list(c) for c in zip(*llc))
    expected = llc_stages(steps, values, se)
    got = con.execute(
        "select phase, start_step, end_step, n_checkpoints from marts.fct_phases "
        "where model_id = ? and signal = 'llc' order by phase_index",
        [model_id],
    ).fetchall()
    assert got == [(s["phase"], s["start_step"], s["end_step"], s["n_checkpoints"]) for s in expected]
    assert sum(g[3] for g in got) == len(steps)
    first, prev, nxt, n_stages = con.execute(
        "select llc_stage_step, llc_stage_prev_step, llc_stage_next_step, llc_n_stages "
        "from marts.fct_phase_alignment where model_id = ?",
        [model_id],
    ).fetchone()
    bounds = [s["boundary_step"] for s in expected if s["boundary_step"] is not None]
    assert n_stages == len(expected) and first == (bounds[0] if bounds else None)
    if bounds:
        i = steps.index(first)
        assert (prev, nxt) == (steps[i - 1], steps[i + 1])
