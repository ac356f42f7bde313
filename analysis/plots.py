"""Figures from the marts: the density of a tensor over training (the seed's Figure 2, a
step x value heatmap on shared bin edges) and MSD curves with their peaks (Figure 3).

One file per model and figure, drawn by the builders the report uses too
(``analysis.figures``). The marts are read through one read-only connection to the serving
snapshot, with the model and tensor bound as parameters."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.figures import draw_density, draw_msd  # noqa: E402
from warehouse.snapshot import connect  # noqa: E402
from warehouse.sql import run_with_timeout  # noqa: E402


def _slug(model_id: str) -> str:
    """A model id as one file-name component (``toy/neox-2l`` -> ``toy_neox-2l``)."""
    from warehouse.paths import safe_component
    return safe_component(model_id)


def density_heatmap(density: pd.DataFrame, title: str, out: Path) -> Path:
    """Heatmap of density (log colour) with checkpoints on x (in step order) and values on y."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    draw_density(ax, density)
    ax.set_title(title)
    return _save(fig, out)


def msd_curves(msd: pd.DataFrame, peaks: pd.DataFrame, title: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    draw_msd(ax, msd, peaks, annotate=True)
    ax.set_xscale("symlog", linthresh=max(1, int(msd["step"][msd["step"] > 0].min() or 1)))
    ax.set_xlabel("step")
    ax.set_title(title)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_figures(warehouse: Path, out_dir: Path, tensor: str = "lm_head.weight") -> list[Path]:
    """Per model: the density heatmap of ``tensor`` and the MSD curves of every tensor."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    con = connect(Path(warehouse))
    try:
        def frame(sql: str, *params) -> pd.DataFrame:
            return run_with_timeout(con, sql, None, list(params))

        for model in frame("select distinct model_id from marts.fct_msd order by 1")["model_id"]:
            dens = frame("select step, bin_index, bin_lo, bin_hi, density from marts.fct_weight_density "
                         "where model_id = ? and tensor_name = ?", model, tensor)
            if len(dens):
                written.append(density_heatmap(dens, f"{model}: density of {tensor} over training",
                                               out_dir / f"density_{_slug(model)}.png"))
            msd = frame("select tensor_name, step, msd from marts.fct_msd where model_id = ?", model)
            peaks = frame("select * from marts.fct_bifurcation where model_id = ?", model)
            written.append(msd_curves(msd, peaks, f"{model}: mean square displacement",
                                      out_dir / f"msd_{_slug(model)}.png"))
    finally:
        con.close()
    return written
