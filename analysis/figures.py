"""The weight figures, drawn once: density over training (the seed's Figure 2) and MSD with
its peaks (Figure 3), each onto a matplotlib axis it is handed.

``tdw figures`` (``analysis.plots``: one file per model) and the report's weights section
(``analysis.report_sections.weights``: one panel per model) call the same builders and
differ only in what they pass: tick count and labels, the x mapping (raw or normalised
steps), marker sizes, and whether peaks are annotated. Builders take frames read from the
marts and import nothing of the warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd

Steps = Callable[[np.ndarray], np.ndarray]


def _raw(steps) -> np.ndarray:
    return np.asarray(steps, dtype=float)


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between consecutive centres (a single centre gets width 1)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[centres[0] - (mid[0] - centres[0])], mid, [centres[-1] + (centres[-1] - mid[-1])]])


def draw_density(ax, density: pd.DataFrame, *, x: Steps = _raw, xlabel: str = "step"):
    """Heatmap of one tensor's density (log colour) on a training-step axis (mapped by ``x``):
    each checkpoint's column spans halfway to its neighbours, so uneven checkpoint spacing
    shows as it is; bins shared by every checkpoint on y, with a colour bar.

    density: rows (step, bin_index, bin_lo, bin_hi, density) of one model and tensor."""
    steps = np.sort(density["step"].unique())
    bins = density.drop_duplicates("bin_index").sort_values("bin_index")
    grid = (
        density.pivot(index="bin_index", columns="step", values="density")
        .reindex(index=bins["bin_index"], columns=steps)
        .to_numpy(dtype=float)
    )  # [bin, checkpoint]
    edges_y = np.append(bins["bin_lo"].to_numpy(), bins["bin_hi"].to_numpy()[-1])
    positive = grid[grid > 0]
    norm = matplotlib.colors.LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    mesh = ax.pcolormesh(
        _edges(np.asarray(x(steps), dtype=float)),
        edges_y,
        np.where(grid > 0, grid, np.nan),
        norm=norm,
        cmap="viridis",
        shading="flat",
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("parameter value")
    ax.figure.colorbar(mesh, ax=ax, label="density")
    return mesh


@dataclass(frozen=True)
class MsdSizes:
    """Marker and legend sizes of the MSD figure: a file per model (the defaults) or a
    smaller report panel. marker_size None: matplotlib's default."""

    marker_size: float | None = None
    peak_size: float = 10
    legend_size: float = 8


def draw_msd(
    ax, msd: pd.DataFrame, peaks: pd.DataFrame, *, x: Steps = _raw, annotate: bool = False, sizes: MsdSizes = MsdSizes()
) -> None:
    """One MSD curve per tensor over steps (mapped by ``x``) on linear axes, as in the seed's
    Figure 3. Only a real peak (peak_status 'peak': MSD falls after it) is circled; a maximum
    at the last checkpoint is labelled "no peak: still rising" when ``annotate``. When msd
    carries msd_time_demeaned, that variant is drawn dashed on a right axis, labelled as
    what it is: 0 at the last checkpoint by construction, a check and not a finding.

    msd: rows (tensor_name, step, msd[, msd_time_demeaned]) of one model; peaks:
    (tensor_name, peak_step, peak_msd[, peak_status])."""
    demeaned = ax.twinx() if "msd_time_demeaned" in msd.columns else None
    for name, g in msd.groupby("tensor_name"):
        g = g.sort_values("step")
        (line,) = ax.plot(x(g["step"]), g["msd"], marker=".", ms=sizes.marker_size, label=name)
        if demeaned is not None:
            demeaned.plot(
                x(g["step"]),
                g["msd_time_demeaned"],
                ls="--",
                lw=1,
                color=line.get_color(),
                label=f"{name}, time-demeaned",
            )
        p = peaks[peaks["tensor_name"] == name]
        if not len(p):
            continue
        real = "peak_status" not in p.columns or p["peak_status"].iloc[0] == "peak"
        if real:
            ax.plot(x(p["peak_step"]), p["peak_msd"], "o", ms=sizes.peak_size, mfc="none", color=line.get_color())
        if annotate:
            text = f"peak @ {int(p['peak_step'].iloc[0])}" if real else str(p["peak_status"].iloc[0])
            ax.annotate(
                text,
                (x(p["peak_step"])[0], p["peak_msd"].iloc[0]),
                textcoords="offset points",
                xytext=(-10, 8),
                ha="right",
                fontsize=8,
            )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("MSD (eqs. 4-5)")
    if demeaned is not None:
        demeaned.set_ylim(bottom=0)
        demeaned.set_ylabel(
            "time-demeaned MSD (dashed): 0 at the end\nby construction - a check, not a finding", fontsize=7
        )
    ax.legend(fontsize=sizes.legend_size)
