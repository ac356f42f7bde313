"""Figures from the marts: the density of a tensor over training (the seed's Figure 2, a
step x value heatmap on shared bin edges) and MSD curves with their peaks (Figure 3)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from warehouse.sql import query  # noqa: E402


def _slug(model_id: str) -> str:
    """A model id as one file-name component (``toy/neox-2l`` -> ``toy_neox-2l``)."""
    from warehouse.paths import safe_component
    return safe_component(model_id)


def density_heatmap(density: pd.DataFrame, title: str, out: Path) -> Path:
    """Heatmap of density (log colour) with checkpoints on x (in step order) and values on y."""
    steps = np.sort(density["step"].unique())
    bins = density.drop_duplicates("bin_index").sort_values("bin_index")
    grid = (density.pivot(index="bin_index", columns="step", values="density")
            .reindex(columns=steps).to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    edges_y = np.append(bins["bin_lo"].to_numpy(), bins["bin_hi"].to_numpy()[-1])
    positive = grid[grid > 0]
    vmin = positive.min() if positive.size else 1e-6
    mesh = ax.pcolormesh(np.arange(len(steps) + 1), edges_y, np.where(grid > 0, grid, np.nan),
                         norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=np.nanmax(grid)),
                         cmap="viridis", shading="flat")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
    ax.set_xticks(ticks + 0.5, [str(steps[i]) for i in ticks])
    ax.set_xlabel("checkpoint step (in step order)")
    ax.set_ylabel("parameter value")
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label="density")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def msd_curves(msd: pd.DataFrame, peaks: pd.DataFrame, title: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, g in msd.groupby("tensor_name"):
        g = g.sort_values("step")
        line, = ax.plot(g["step"], g["msd"], marker=".", label=name)
        p = peaks[peaks["tensor_name"] == name]
        if len(p):
            ax.plot(p["peak_step"], p["peak_msd"], "o", ms=10, mfc="none", color=line.get_color())
            ax.annotate(f"peak @ {int(p['peak_step'].iloc[0])}",
                        (p["peak_step"].iloc[0], p["peak_msd"].iloc[0]),
                        textcoords="offset points", xytext=(-10, 8), ha="right", fontsize=8)
    ax.set_xscale("symlog", linthresh=max(1, int(msd["step"][msd["step"] > 0].min() or 1)))
    if (msd["msd"] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSD (eqs. 4-5)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_figures(warehouse: Path, out_dir: Path, tensor: str = "lm_head.weight") -> list[Path]:
    """Per model: the density heatmap of ``tensor`` and the MSD curves of every tensor."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    models = query(warehouse, "select distinct model_id from marts.fct_msd order by 1")["model_id"]
    t = tensor.replace("'", "''")
    for model in models:
        q = model.replace("'", "''")
        dens = query(warehouse, f"select step, bin_index, bin_lo, bin_hi, density from "
                                f"marts.fct_weight_density where model_id = '{q}' and tensor_name = '{t}'")
        if len(dens):
            written.append(density_heatmap(dens, f"{model}: density of {tensor} over training",
                                           out_dir / f"density_{_slug(model)}.png"))
        msd = query(warehouse, f"select tensor_name, step, msd from marts.fct_msd where model_id = '{q}'")
        peaks = query(warehouse, f"select * from marts.fct_bifurcation where model_id = '{q}'")
        written.append(msd_curves(msd, peaks, f"{model}: mean square displacement",
                                  out_dir / f"msd_{_slug(model)}.png"))
    return written
