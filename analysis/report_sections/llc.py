"""The LLC curve for the phases section: per model, the local learning coefficient over
checkpoints (fct_llc: mean over chains, ± one standard deviation), on the same step axis as
the other aligned signals, with the LLC stage boundaries (int_llc_stages, the critical
points of the curve over log-step; dashed) and the capability transition (dotted)."""

from __future__ import annotations

import pandas as pd

from analysis.report_sections import Context, Figure, panels, png


def llc_figure(ctx: Context) -> Figure | None:
    if not ctx.has("fct_llc"):
        return None
    llc = ctx.df(
        "select model_id, step, llc_mean, llc_std, diverged from marts.fct_llc "
        "where list_contains($models, model_id) and llc_mean is not null order by model_id, step"
    )
    phases = (
        ctx.df(
            "select model_id, end_step from marts.fct_phases "
            "where signal = 'llc' and list_contains($models, model_id) order by model_id, start_step"
        )
        if ctx.has("fct_phases")
        else pd.DataFrame(columns=["model_id", "end_step"])
    )
    models = [m for m in ctx.models if m in set(llc["model_id"])]
    if not models:
        return None
    fig, axes = panels(len(models), width=5.5, height=3.0)
    for ax, model in zip(axes, models):
        m = llc[llc["model_id"] == model]
        x = ctx.x(model, m["step"])
        std = m["llc_std"].fillna(0.0).to_numpy(dtype=float)
        ax.plot(x, m["llc_mean"], marker=".", ms=4, color=ctx.colors[model], label="LLC (mean over chains)")
        ax.fill_between(x, m["llc_mean"] - std, m["llc_mean"] + std, color=ctx.colors[model], alpha=0.2)
        flagged = m[m["diverged"].astype(bool)]
        if len(flagged):
            ax.scatter(
                ctx.x(model, flagged["step"]), flagged["llc_mean"], marker="x", color="red", label="a chain diverged"
            )
        ends = phases[phases["model_id"] == model]["end_step"].to_numpy(dtype=float)[:-1]  # the last stage has no end
        for k, e in enumerate(ends):
            ax.axvline(
                ctx.x(model, [e])[0], ls="--", lw=1, color="gray", label="LLC stage boundary" if k == 0 else None
            )
        ctx.mark_capability(ax, [model])
        ctx.step_axis(ax)
        ax.set_ylabel("LLC")
        ax.set_title(model, fontsize=10)
        ax.legend(fontsize=7)
    return Figure(
        "llc_curve",
        png(fig),
        "Local learning coefficient per checkpoint (devinterp SGLD; band: ± one standard deviation "
        "over chains), its stage boundaries (critical points over log-step, Hoogland et al. 2024; "
        "dashed) and the capability transition (dotted). Values compare within one model's "
        "hyperparameters only.",
    )
