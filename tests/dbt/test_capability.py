"""The capability signal on the built toy warehouse: the induction loss recomputed with the
Hugging Face model on the stored prompts, and the transition it marks lined up with the
component graph's phases (the issue's test: within 2 checkpoint intervals of a boundary)."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch

from ingest.sources import open_source
from tests.conftest import TOY_MODELS


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


def test_capability_loss_is_the_models_loss_on_the_stored_prompts(con, toy_suite):
    model_id = TOY_MODELS[0]
    step = con.execute("select max(step) from marts.fct_capability where model_id = ?", [model_id]).fetchone()[0]
    prompts = con.execute("select distinct prompt_index, token_ids, measure_start, measure_end from "
                          "raw.graph_prompts where model_id = ? and step = ? and task = 'induction' "
                          "order by prompt_index", [model_id, step]).fetchall()
    model = open_source(model_id, toy_root=toy_suite).checkpoint(step).load_model().eval()
    losses = []
    with torch.no_grad():
        for _, ids, lo, hi in prompts:
            ids = torch.tensor(ids, dtype=torch.long)[None]
            logits = model(ids).logits[0].double()
            nll = torch.nn.functional.cross_entropy(logits[lo:hi], ids[0, lo + 1:hi + 1], reduction="mean")
            losses.append(float(nll))
    got = con.execute("select loss, n_prompts from marts.fct_capability where model_id = ? and step = ? "
                      "and task = 'induction'", [model_id, step]).fetchone()
    assert got[1] == len(prompts)
    assert got[0] == pytest.approx(np.mean(losses), rel=1e-4)


@pytest.mark.parametrize("model_id", TOY_MODELS)
def test_capability_transition_is_near_a_graph_phase_boundary(con, model_id):
    cap = con.execute("select transition_step from intermediate.int_capability_transition "
                      "where model_id = ? and task = 'induction'", [model_id]).fetchone()[0]
    assert cap is not None, "every toy model shows the induction transition"
    steps = [r[0] for r in con.execute("select distinct step from marts.fct_capability where model_id = ? "
                                       "order by step", [model_id]).fetchall()]
    bounds = [r[0] for r in con.execute("select start_step from marts.fct_phases where model_id = ? and "
                                        "signal = 'graph_induction_zero' and phase_index > 1", [model_id]).fetchall()]
    assert bounds, "the graph signal has a phase boundary"
    assert min(abs(steps.index(cap) - steps.index(b)) for b in bounds) <= 2
