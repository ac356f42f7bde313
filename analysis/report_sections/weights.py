"""Weights: the density of a tensor over training (seed Figure 2) and MSD with peaks (Figure 3),
one panel per model, drawn by the builders ``tdw figures`` uses (``analysis.figures``)."""

from __future__ import annotations

from analysis.figures import MsdSizes, draw_density, draw_msd
from analysis.report_sections import Context, Figure, Section, build_section, panels, png

PREFERRED_TENSOR = "lm_head.weight"


def _tensor(ctx: Context) -> str:
    common = ctx.df(
        "select tensor_name, count(distinct model_id) as n from marts.fct_weight_density "
        "where list_contains($models, model_id) group by 1 order by n desc, tensor_name"
    )
    names = list(common["tensor_name"])
    return PREFERRED_TENSOR if PREFERRED_TENSOR in names else names[0]


def density_figure(ctx: Context, tensor: str) -> Figure:
    dens = ctx.df(
        "select model_id, step, bin_index, bin_lo, bin_hi, density from marts.fct_weight_density "
        "where list_contains($models, model_id) and tensor_name = $t",
        t=tensor,
    )
    models = [m for m in ctx.models if m in set(dens["model_id"])]
    fig, axes = panels(len(models), width=5.2)
    for ax, model in zip(axes, models):
        draw_density(ax, dens[dens["model_id"] == model], x=lambda steps, m=model: ctx.x(m, steps), xlabel=ctx.xlabel)
        ctx.mark_capability(ax, [model])
        ax.set_title(model, fontsize=10)
    return Figure(
        "density",
        png(fig),
        f"Density of {tensor} over training (log colour; bins shared by "
        "every checkpoint of a model) - the seed's Figure 2.",
    )


def msd_figure(ctx: Context) -> Figure:
    msd = ctx.df(
        "select model_id, tensor_name, step, msd, msd_time_demeaned from marts.fct_msd "
        "where list_contains($models, model_id) order by step"
    )
    peaks = ctx.df(
        "select model_id, tensor_name, peak_step, peak_msd, peak_status from marts.fct_bifurcation "
        "where list_contains($models, model_id)"
    )
    models = [m for m in ctx.models if m in set(msd["model_id"])]
    fig, axes = panels(len(models), sharey=True)
    for ax, model in zip(axes, models):
        draw_msd(
            ax,
            msd[msd["model_id"] == model],
            peaks[peaks["model_id"] == model],
            x=lambda steps, m=model: ctx.x(m, steps),
            annotate=True,
            sizes=MsdSizes(marker_size=3, peak_size=9, legend_size=6),
        )
        ctx.mark_capability(ax, [model])
        ctx.step_axis(ax, linear=True)
        ax.set_title(model, fontsize=10)
    return Figure(
        "msd",
        png(fig),
        "Mean square displacement of every tensor on linear axes (the seed's "
        "Figure 3); a peak is circled only when MSD falls after it, otherwise the "
        "curve says 'no peak: still rising'. Dashed, right axis: the time-demeaned "
        "variant, which falls to 0 at the last checkpoint by construction (a check "
        "on Figure 3, not a finding).",
    )


def weights_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_weight_density"):
        figures.append(density_figure(ctx, _tensor(ctx)))
    if ctx.has("fct_msd"):
        figures.append(msd_figure(ctx))
    return build_section(
        ctx,
        "weights",
        "Weights: density and mean square displacement",
        figures,
        [
            (
                "fct_bifurcation",
                "MSD peaks",
                "select model_id, tensor_name, peak_status, peak_step, peak_msd, fall_ratio from marts.fct_bifurcation "
                "where list_contains($models, model_id) order by 1, 2",
            )
        ],
    )
