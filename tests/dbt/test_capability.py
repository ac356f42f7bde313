"""The capability signal on the built toy warehouse: each task's loss recomputed with the
Hugging Face model's own loss on the probe's prompts, and the transition it marks lined up with the
component graph's phases (the issue's test: within 2 checkpoint intervals of a boundary)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch

from ingest.probes.capability import CapabilityProbe
from ingest.sources import open_source
from tests.conftest import TOY_MODELS


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


@pytest.mark.parametrize("task", ["induction", "markov"])
def test_capability_loss_is_the_models_loss_on_its_prompts(con, toy_suite, task):
    """fct_capability against Hugging Face's own loss (labels shifted by the model) on the
    probe's prompts, rebuilt from the task definitions and the stored seed."""
    model_id = TOY_MODELS[0]
    source = open_source(model_id, toy_root=toy_suite)
    step = con.execute("select max(step) from marts.fct_capability where model_id = ?", [model_id]).fetchone()[0]
    probe = CapabilityProbe()
    ps = probe._prompts(source.checkpoint(step), probe.params())[task]
    model = source.checkpoint(step).load_model().eval()
    losses = []
    with torch.no_grad():
        for ids, lo, hi in zip(ps.prompts, ps.measure_start, ps.measure_end):
            x = torch.as_tensor(ids, dtype=torch.long)[None]
            labels = torch.full_like(x, -100)
            labels[0, lo + 1 : hi + 1] = x[0, lo + 1 : hi + 1]  # scored: next tokens of [lo, hi)
            losses.append(float(model(x, labels=labels).loss))
    got = con.execute(
        "select loss, n_prompts, source from marts.fct_capability where model_id = ? and step = ? and task = ?",
        [model_id, step, task],
    ).fetchone()
    assert got[2] == "capability" and got[1] == len(ps)
    assert got[0] == pytest.approx(np.mean(losses), rel=1e-4)


@pytest.mark.parametrize("model_id", TOY_MODELS)
def test_capability_transition_is_near_a_graph_phase_boundary(con, model_id):
    cap = con.execute(
        "select transition_step from intermediate.int_capability_transition where model_id = ? and task = 'induction'",
        [model_id],
    ).fetchone()[0]
    assert cap is not None, "every toy model shows the induction transition"
    steps = [
        r[0]
        for r in con.execute(
            "select distinct step from marts.fct_capability where model_id = ? order by step", [model_id]
        ).fetchall()
    ]
    bounds = [
        r[0]
        for r in con.execute(
            "select start_step from marts.fct_phases where model_id = ? and "
            "signal = 'graph_induction_zero' and phase_index > 1",
            [model_id],
        ).fetchall()
    ]
    assert bounds, "the graph signal has a phase boundary"
    assert min(abs(steps.index(cap) - steps.index(b)) for b in bounds) <= 2


def test_demo_summary_lines_up_each_models_transition(con, built_warehouse):
    """The demo's summary: one row per model, its induction transition as the mart has it,
    the graph's phase starts, and the residual points the probe sampled."""
    from analysis.summary import summary_frame

    s = summary_frame(built_warehouse).set_index("model_id")
    assert sorted(s.index) == sorted(TOY_MODELS)
    for model_id in TOY_MODELS:
        step, prev, nxt = con.execute(
            "select transition_step, prev_step, next_step from intermediate.int_capability_transition "
            "where model_id = ? and task = 'induction'",
            [model_id],
        ).fetchone()
        row = s.loc[model_id]
        assert row.induction_step == step and row.induction_between == f"{prev}..{nxt}"
        points = con.execute(
            "select count(distinct layer) from marts.fct_residual_dynamics where model_id = ?", [model_id]
        ).fetchone()[0]
        assert row.residual_points == points
        peaks, n = row.msd_peaks.split(" of ")
        assert 0 <= int(peaks) <= int(n)
