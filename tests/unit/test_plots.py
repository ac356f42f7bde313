"""``tdw figures`` on a small marts file: bound parameters, and the shared figure builders.

The marts are written by hand (a few rows each) into a DuckDB file, so no build is needed;
a model id and a tensor name with a quote in them must be read as values (they were once
pasted into the SQL with hand-escaped quotes).
"""
from __future__ import annotations

import duckdb
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.figures import draw_density, draw_msd  # noqa: E402
from analysis.plots import write_figures  # noqa: E402

MODEL, TENSOR = "local/o'brien", "w'eird.weight"
STEPS = [0, 1, 2, 4, 8]


def density_rows(model: str, tensor: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in STEPS:
        d = rng.random(4)
        d[0] = 0.0                                   # an empty bin is drawn blank, not log(0)
        for b in range(4):
            rows.append((model, tensor, s, b, b / 4, (b + 1) / 4, int(d[b] * 100), d[b] / d.sum()))
    return pd.DataFrame(rows, columns=["model_id", "tensor_name", "step", "bin_index", "bin_lo",
                                       "bin_hi", "count", "density"])


@pytest.fixture
def marts(tmp_path):
    path = tmp_path / "wh.duckdb"
    dens = pd.concat([density_rows(MODEL, TENSOR), density_rows("toy/other", "lm_head.weight")])
    msd = pd.DataFrame([(m, t, s, 1.0 + s * (1 + i)) for i, (m, t) in enumerate([(MODEL, TENSOR), ("toy/other", "x")])
                        for s in STEPS], columns=["model_id", "tensor_name", "step", "msd"])
    peaks = msd.loc[msd.groupby("model_id")["msd"].idxmax(), ["model_id", "tensor_name", "step", "msd"]]
    peaks.columns = ["model_id", "tensor_name", "peak_step", "peak_msd"]
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    for name, frame in (("fct_weight_density", dens), ("fct_msd", msd), ("fct_bifurcation", peaks)):
        con.register("f", frame)
        con.execute(f"create table marts.{name} as select * from f")
        con.unregister("f")
    con.close()
    return path, dens, msd, peaks


def test_write_figures_binds_model_and_tensor(marts, tmp_path):
    path, *_ = marts
    written = write_figures(path, tmp_path / "fig", tensor=TENSOR)
    names = sorted(p.name for p in written)
    # only the quoted model has the quoted tensor; both models have MSD curves
    assert names == ["density_local_o'brien.png", "msd_local_o'brien.png", "msd_toy_other.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_density_builder_draws_the_mart_grid(marts):
    _, dens, _, _ = marts
    d = dens[dens["model_id"] == MODEL]
    fig, ax = plt.subplots()
    mesh = draw_density(ax, d, n_ticks=3)
    grid = d.pivot(index="bin_index", columns="step", values="density").to_numpy()
    drawn = np.ma.filled(mesh.get_array(), np.nan).reshape(grid.shape)
    np.testing.assert_allclose(drawn, np.where(grid > 0, grid, np.nan))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "8"]
    plt.close(fig)


def test_msd_builder_maps_steps_and_circles_peaks(marts):
    _, _, msd, peaks = marts
    fig, ax = plt.subplots()
    m = msd[msd["model_id"] == MODEL]
    draw_msd(ax, m, peaks[peaks["model_id"] == MODEL], x=lambda s: np.asarray(s, float) / 8, annotate=True)
    curve, peak = ax.get_lines()
    np.testing.assert_allclose(curve.get_xdata(), np.array(STEPS) / 8)
    np.testing.assert_allclose(curve.get_ydata(), m.sort_values("step")["msd"])
    assert (peak.get_xdata()[0], peak.get_ydata()[0]) == (1.0, m["msd"].max())
    assert ax.get_yscale() == "log" and ax.texts[0].get_text() == "peak @ 8"
    plt.close(fig)
