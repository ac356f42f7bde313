"""The weight figures, drawn once: density over training (the seed's Figure 2) and MSD with
its peaks (Figure 3), each onto a matplotlib axis it is handed.

``tdw figures`` (``analysis.plots``: one file per model) and the report's weights section
(``analysis.report_sections.weights``: one panel per model) call the same builders and
differ only in what they pass: tick count and labels, the x mapping (raw or normalised
steps), marker sizes, and whether peaks are annotated. Builders take frames read from the
marts and import nothing of the warehouse.
"""
from __future__ import annotations

from typing import Callable

import matplotlib
import numpy as np
import pandas as pd

Steps = Callable[[np.ndarray], np.ndarray]


def _raw(steps) -> np.ndarray:
    return np.asarray(steps, dtype=float)


def draw_density(ax, density: pd.DataFrame, *, n_ticks: int = 8,
                 tick_labels: Callable[[np.ndarray], list[str]] | None = None,
                 xlabel: str = "checkpoint step (in step order)"):
    """Heatmap of one tensor's density (log colour): checkpoints on x in step order (one
    column each, bins shared by every checkpoint), parameter values on y, with a colour bar.

    density: rows (step, bin_index, bin_lo, bin_hi, density) of one model and tensor."""
    steps = np.sort(density["step"].unique())
    bins = density.drop_duplicates("bin_index").sort_values("bin_index")
    grid = (density.pivot(index="bin_index", columns="step", values="density")
            .reindex(index=bins["bin_index"], columns=steps).to_numpy(dtype=float))  # [bin, checkpoint]
    edges_y = np.append(bins["bin_lo"].to_numpy(), bins["bin_hi"].to_numpy()[-1])
    positive = grid[grid > 0]
    norm = matplotlib.colors.LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    mesh = ax.pcolormesh(np.arange(len(steps) + 1), edges_y, np.where(grid > 0, grid, np.nan),
                         norm=norm, cmap="viridis", shading="flat")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), n_ticks)).astype(int))
    labels = tick_labels(steps[ticks]) if tick_labels else [str(s) for s in steps[ticks]]
    ax.set_xticks(ticks + 0.5, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("parameter value")
    ax.figure.colorbar(mesh, ax=ax, label="density")
    return mesh


def draw_msd(ax, msd: pd.DataFrame, peaks: pd.DataFrame, *, x: Steps = _raw, marker_size: float | None = None,
             peak_size: float = 10, annotate: bool = False, legend_size: float = 8) -> None:
    """One MSD curve per tensor over steps (mapped by ``x``), its peak circled (and labelled
    when ``annotate``); log y when every MSD is positive. The x scale is the caller's.

    msd: rows (tensor_name, step, msd) of one model; peaks: (tensor_name, peak_step, peak_msd)."""
    for name, g in msd.groupby("tensor_name"):
        g = g.sort_values("step")
        line, = ax.plot(x(g["step"]), g["msd"], marker=".", ms=marker_size, label=name)
        p = peaks[peaks["tensor_name"] == name]
        if len(p):
            ax.plot(x(p["peak_step"]), p["peak_msd"], "o", ms=peak_size, mfc="none", color=line.get_color())
            if annotate:
                ax.annotate(f"peak @ {int(p['peak_step'].iloc[0])}",
                            (x(p["peak_step"])[0], p["peak_msd"].iloc[0]),
                            textcoords="offset points", xytext=(-10, 8), ha="right", fontsize=8)
    if (msd["msd"] > 0).all():
        ax.set_yscale("log")
    ax.set_ylabel("MSD (eqs. 4-5)")
    ax.legend(fontsize=legend_size)
