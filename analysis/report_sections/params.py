"""Parameter dynamics: perplexity in linear and log scale (seed Figures 4 and 6), covariance rank
(Figure 7); and the phases section: every signal's change step aligned, per model."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report_sections import Context, Figure, Section, build_section, panels, png

MAX_PANELS = 4
SIGNALS = {  # fct_phase_alignment column -> label
    "msd_peak_step": "MSD peak", "perplexity_drop_step": "perplexity drop",
    "unmasking_drop_step": "unmasked perplexity drop", "covariance_drop_step": "covariance-rank drop",
    "stationarity_step": "stationarity"}


def curves(ctx: Context, frame: pd.DataFrame, keys: list[str], y: str, ylabel: str, log_y: bool) -> bytes:
    """One panel per combination of ``keys``, one line per model."""
    groups = list(frame.groupby(keys, sort=True))[:MAX_PANELS]
    fig, axes = panels(len(groups))
    for ax, (key, g) in zip(axes, groups):
        for model in ctx.models:
            m = g[g["model_id"] == model].sort_values("step")
            if len(m):
                ax.plot(ctx.x(model, m["step"]), m[y], marker=".", ms=3, color=ctx.colors[model], label=model)
        ctx.step_axis(ax)
        if log_y and (g[y].dropna() > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,))),
                     fontsize=9)
        ax.legend(fontsize=7)
    return png(fig)


def params_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_perplexity"):
        ppl = ctx.df("select model_id, step, dataset, method, perplexity from marts.fct_perplexity "
                     "where list_contains($models, model_id) and perplexity is not null")
        if len(ppl):
            figures.append(Figure("perplexity_linear", curves(ctx, ppl, ["dataset", "method"], "perplexity",
                                                              "perplexity", False),
                                  "Perplexity over training, linear scale - the seed's Figure 4."))
            figures.append(Figure("perplexity_log", curves(ctx, ppl, ["dataset", "method"], "perplexity",
                                                           "perplexity (log)", True),
                                  "Perplexity over training, log scale - the seed's Figure 6."))
    if ctx.has("fct_covariance_rank"):
        cov = ctx.df("select model_id, step, batch_size, tolerance, tensor_name, rank from marts.fct_covariance_rank "
                     "where list_contains($models, model_id)")
        figures.append(Figure("covariance_rank", curves(ctx, cov, ["tensor_name", "batch_size", "tolerance"],
                                                        "rank", "rank (eigenvalues > tolerance)", False),
                              "Rank of the activation covariance over training - the seed's Figure 7."))
    return build_section(ctx, "params", "Parameter dynamics: perplexity and covariance rank", figures, [(
        "fct_stationarity", "Stationarity (per tensor)",
        "select model_id, tensor_name, stationary_step, is_stationary, fraction_of_training_saved "
        "from marts.fct_stationarity where list_contains($models, model_id) order by 1, 2 limit 60")])


def aligned_signals(ctx: Context, align: pd.DataFrame) -> bytes:
    """Per model (rows), the step of each signal's change, on one step axis."""
    cols = [c for c in SIGNALS if c in align.columns]
    fig, axes = panels(1, width=9, height=1.2 + 0.6 * len(ctx.models))
    ax = axes[0]
    markers = "o^sDv"
    for i, model in enumerate(ctx.models):
        rows = align[align["model_id"] == model]
        for j, col in enumerate(cols):
            vals = rows[col].dropna().to_numpy(dtype=float)
            if len(vals):
                ax.scatter(ctx.x(model, vals), np.full(len(vals), i) + 0.08 * (j - 2), marker=markers[j % 5],
                           color=f"C{j}", label=SIGNALS[col])
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_yticks(range(len(ctx.models)), ctx.models)
    ax.set_ylim(-0.6, len(ctx.models) - 0.4)
    ctx.step_axis(ax)
    return png(fig)


def phase_spans(ctx: Context, phases: pd.DataFrame) -> bytes:
    """Each signal's phases (from change points) as bars, one panel per model."""
    models = [m for m in ctx.models if m in set(phases["model_id"])]
    fig, axes = panels(len(models), width=5.5, height=1.2 + 0.35 * phases["signal"].nunique())
    for ax, model in zip(axes, models):
        p = phases[phases["model_id"] == model]
        signals = sorted(p["signal"].unique())
        for i, sig in enumerate(signals):
            for k, row in enumerate(p[p["signal"] == sig].sort_values("start_step").itertuples()):
                lo, hi = ctx.x(model, [row.start_step, row.end_step])
                ax.broken_barh([(lo, max(hi - lo, 1e-9))], (i - 0.4, 0.8), color=f"C{k % 10}", alpha=0.7)
        ax.set_yticks(range(len(signals)), signals, fontsize=7)
        ax.set_xlabel(ctx.xlabel)
        ax.set_title(model, fontsize=10)
    return png(fig)


def phases_section(ctx: Context) -> Section | None:
    section = Section("phases", "Phases: change points of every signal, aligned")
    if ctx.has("fct_phase_alignment"):
        align = ctx.df("select * from marts.fct_phase_alignment where list_contains($models, model_id) "
                       "order by model_id")
        if align[[c for c in SIGNALS if c in align.columns]].notna().any().any():
            section.figures.append(Figure("aligned_signals", aligned_signals(ctx, align),
                                          "When each signal changes: MSD peak, perplexity drops, covariance-rank "
                                          "drop, stationarity (METHODS, phase alignment)."))
        section.tables.append(("Phase alignment (steps)", align))
    if ctx.has("fct_phases"):
        phases = ctx.df("select model_id, signal, phase, start_step, end_step from marts.fct_phases "
                        "where list_contains($models, model_id)")
        section.figures.append(Figure("phase_spans", phase_spans(ctx, phases),
                                      "Training phases of each signal (change-point segmentation)."))
    return section if section.figures or section.tables else None
