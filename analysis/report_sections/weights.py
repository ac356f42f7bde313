"""Weights: the density of a tensor over training (seed Figure 2) and MSD with peaks (Figure 3)."""
from __future__ import annotations

import matplotlib
import numpy as np

from analysis.report_sections import Context, Figure, Section, panels, png

PREFERRED_TENSOR = "lm_head.weight"


def _tensor(ctx: Context) -> str:
    common = ctx.df("select tensor_name, count(distinct model_id) as n from marts.fct_weight_density "
                    "where list_contains($models, model_id) group by 1 order by n desc, tensor_name")
    names = list(common["tensor_name"])
    return PREFERRED_TENSOR if PREFERRED_TENSOR in names else names[0]


def density_figure(ctx: Context, tensor: str) -> Figure:
    dens = ctx.df("select model_id, step, bin_index, bin_lo, bin_hi, density from marts.fct_weight_density "
                  "where list_contains($models, model_id) and tensor_name = $t", t=tensor)
    models = [m for m in ctx.models if m in set(dens["model_id"])]
    fig, axes = panels(len(models), width=5.2)
    for ax, model in zip(axes, models):
        d = dens[dens["model_id"] == model]
        steps = np.sort(d["step"].unique())
        bins = d.drop_duplicates("bin_index").sort_values("bin_index")
        grid = (d.pivot(index="bin_index", columns="step", values="density")
                .reindex(index=bins["bin_index"], columns=steps).to_numpy(dtype=float))  # [bin, checkpoint]
        edges_y = np.append(bins["bin_lo"].to_numpy(), bins["bin_hi"].to_numpy()[-1])
        positive = grid[grid > 0]
        norm = matplotlib.colors.LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
        mesh = ax.pcolormesh(np.arange(len(steps) + 1), edges_y, np.where(grid > 0, grid, np.nan),
                             norm=norm, cmap="viridis", shading="flat")
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 6)).astype(int))
        labels = [f"{v:.2g}" for v in ctx.x(model, steps[ticks])] if ctx.normalise else [str(s) for s in steps[ticks]]
        ax.set_xticks(ticks + 0.5, labels)
        ax.set_xlabel(f"{ctx.xlabel} (checkpoints in order)")
        ax.set_ylabel("parameter value")
        ax.set_title(model, fontsize=10)
        fig.colorbar(mesh, ax=ax, label="density")
    return Figure("density", png(fig), f"Density of {tensor} over training (log colour; bins shared by "
                                       "every checkpoint of a model) - the seed's Figure 2.")


def msd_figure(ctx: Context) -> Figure:
    msd = ctx.df("select model_id, tensor_name, step, msd from marts.fct_msd "
                 "where list_contains($models, model_id) order by step")
    peaks = ctx.df("select model_id, tensor_name, peak_step, peak_msd from marts.fct_bifurcation "
                   "where list_contains($models, model_id)")
    models = [m for m in ctx.models if m in set(msd["model_id"])]
    fig, axes = panels(len(models), sharey=True)
    for ax, model in zip(axes, models):
        m = msd[msd["model_id"] == model]
        for name, g in m.groupby("tensor_name"):
            line, = ax.plot(ctx.x(model, g["step"]), g["msd"], marker=".", ms=3, label=name)
            p = peaks[(peaks["model_id"] == model) & (peaks["tensor_name"] == name)]
            if len(p):
                ax.plot(ctx.x(model, p["peak_step"]), p["peak_msd"], "o", ms=9, mfc="none", color=line.get_color())
        ctx.step_axis(ax)
        if (m["msd"] > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel("MSD (eqs. 4-5)")
        ax.set_title(model, fontsize=10)
        ax.legend(fontsize=6)
    return Figure("msd", png(fig), "Mean square displacement of every tensor, peaks circled (bifurcation) - "
                                   "the seed's Figure 3.")


def weights_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_weight_density"):
        figures.append(density_figure(ctx, _tensor(ctx)))
    if ctx.has("fct_msd"):
        figures.append(msd_figure(ctx))
    if not figures:
        return None
    section = Section("weights", "Weights: density and mean square displacement", figures)
    if ctx.has("fct_bifurcation"):
        section.tables.append(("MSD peaks", ctx.df(
            "select model_id, tensor_name, peak_step, peak_msd, fall_ratio from marts.fct_bifurcation "
            "where list_contains($models, model_id) order by 1, 2")))
    return section
