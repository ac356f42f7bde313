"""Weights: the density of a tensor over training (seed Figure 2) and MSD with peaks (Figure 3),
one panel per model, drawn by the builders ``tdw figures`` uses (``analysis.figures``)."""
from __future__ import annotations

from analysis.figures import draw_density, draw_msd
from analysis.report_sections import Context, Figure, Section, build_section, panels, png

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
        labels = (lambda steps, m=model: [f"{v:.2g}" for v in ctx.x(m, steps)]) if ctx.normalise else None
        draw_density(ax, dens[dens["model_id"] == model], n_ticks=6, tick_labels=labels,
                     xlabel=f"{ctx.xlabel} (checkpoints in order)")
        ax.set_title(model, fontsize=10)
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
        draw_msd(ax, msd[msd["model_id"] == model], peaks[peaks["model_id"] == model],
                 x=lambda steps, m=model: ctx.x(m, steps), marker_size=3, peak_size=9, legend_size=6)
        ctx.step_axis(ax)
        ax.set_title(model, fontsize=10)
    return Figure("msd", png(fig), "Mean square displacement of every tensor, peaks circled (bifurcation) - "
                                   "the seed's Figure 3.")


def weights_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_weight_density"):
        figures.append(density_figure(ctx, _tensor(ctx)))
    if ctx.has("fct_msd"):
        figures.append(msd_figure(ctx))
    return build_section(ctx, "weights", "Weights: density and mean square displacement", figures, [(
        "fct_bifurcation", "MSD peaks",
        "select model_id, tensor_name, peak_step, peak_msd, fall_ratio from marts.fct_bifurcation "
        "where list_contains($models, model_id) order by 1, 2")])
