"""Emergence on constructed residual streams, through the real dbt models: a signal whose
per-prompt values are noise around its threshold never emerges, however its mean wanders;
one with a planted step emerges at the planted checkpoint. The stream is written to the raw
tables of a fresh warehouse (every other raw table empty) and `dbt build` runs the residual
models on it, so the bootstrap over prompts is the one the demo uses."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingest.probes import all_tables
from warehouse import db
from warehouse.dbt import build

STEPS = [0, 16, 32, 48, 64, 80, 96, 112]
N_PROMPTS, N_POINTS = 24, 4
PLANTED = 64


def _stream(model_id: str, growth: np.ndarray, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-prompt rows where PR(last) − PR(0) = growth[step] + noise; velocity constant."""
    prompt_rows, point_rows = [], []
    for k, step in enumerate(STEPS):
        pr0 = np.full(N_PROMPTS, 0.4)
        pr_last = np.clip(pr0 + growth[k] + rng.normal(0, 0.03, N_PROMPTS), 0, 1)
        pr = np.stack([pr0, np.full(N_PROMPTS, 0.5), np.full(N_PROMPTS, 0.5), pr_last], axis=1)
        vel = np.ones((N_PROMPTS, N_POINTS))
        vel[:, -1] = np.nan
        for i in range(N_PROMPTS):
            for layer in range(N_POINTS):
                prompt_rows.append((model_id, step, i, layer, vel[i, layer], pr[i, layer]))
        for layer in range(N_POINTS):
            point_rows.append(
                {
                    "model_id": model_id,
                    "step": step,
                    "layer": layer,
                    "n_samples": N_PROMPTS,
                    "participation_ratio": pr[:, layer].mean(),
                    "velocity": None if layer == N_POINTS - 1 else 1.0,
                }
            )
    cols = ["model_id", "step", "prompt_index", "layer", "velocity", "participation_ratio"]
    return pd.DataFrame(prompt_rows, columns=cols), pd.DataFrame(point_rows)


@pytest.fixture(scope="module")
def emergence(tmp_path_factory):
    wh = tmp_path_factory.mktemp("emergence") / "w.duckdb"
    rng = np.random.default_rng(7)
    noise, noise_points = _stream("noise", np.zeros(len(STEPS)), rng)
    # a mean that drifts a little either side of 0 (what a threshold of 0 calls emergence)
    trend, trend_points = _stream("trend", np.where(np.array(STEPS) >= PLANTED, 0.15, 0.0), rng)
    con = duckdb.connect(str(wh))
    db.ensure_tables(con, all_tables())
    con.register("pp", pd.concat([noise, trend]))
    con.execute("insert into raw.residual_prompt_points by name select * from pp")
    con.register("pts", pd.concat([noise_points, trend_points]))
    con.execute("insert into raw.residual_points by name select * from pts")
    con.close()
    build(wh, select="+fct_residual_emergence")
    con = duckdb.connect(str(wh), read_only=True)
    out = (
        con.execute("select * from marts.fct_residual_emergence where signal = 'density_growth'")
        .df()
        .set_index("model_id")
    )
    con.close()
    return out


def test_noise_only_stream_does_not_emerge(emergence):
    row = emergence.loc["noise"]
    assert pd.isna(row.emergence_step) and not row.has_emerged
    assert row.emergence_status.startswith("not emerged")


def test_planted_trend_emerges_at_the_planted_step(emergence):
    row = emergence.loc["trend"]
    assert row.emergence_status == "emerged" and row.emergence_step == PLANTED
