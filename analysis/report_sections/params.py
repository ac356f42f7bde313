"""Parameter dynamics: forward perplexity (seed Figure 4), causal-unmasking perplexity
(Figure 6), covariance rank and its first difference (Figure 7); and the phases section:
every signal's change step aligned, per model, with the checkpoints that bracket it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report_sections import Context, Figure, Section, build_section, panels, png
from analysis.report_sections.llc import llc_figure

MAX_PANELS = 4
SIGNALS = {  # fct_phase_alignment column -> label
    "msd_peak_step": "MSD peak",
    "perplexity_drop_step": "perplexity drop",
    "unmasking_drop_step": "unmasked perplexity drop",
    "covariance_drop_step": "covariance-rank drop",
    "stationarity_step": "stationarity",
    "llc_stage_step": "LLC stage boundary",
}


def curves(ctx: Context, frame: pd.DataFrame, keys: list[str], y: str, ylabel: str, log_y: bool) -> bytes:
    """One panel per combination of ``keys``, one line per model."""
    groups = list(frame.groupby(keys, sort=True))[:MAX_PANELS]
    fig, axes = panels(len(groups))
    for ax, (key, g) in zip(axes, groups):
        for model in ctx.models:
            m = g[g["model_id"] == model].sort_values("step")
            if len(m):
                ax.plot(ctx.x(model, m["step"]), m[y], marker=".", ms=3, color=ctx.colors[model], label=model)
        ctx.mark_capability(ax)
        ctx.step_axis(ax)
        if log_y and (g[y].dropna() > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,))), fontsize=9)
        ax.legend(fontsize=7)
    return png(fig)


def covariance_panels(ctx: Context, cov: pd.DataFrame) -> bytes:
    """The seed's Figure 7 at its batch size B (64, else the largest ingested): rank over training
    at each tolerance (left) and its first difference between checkpoints (right), per model."""
    fig, axes = panels(2)
    for model in ctx.models:
        m = cov[cov["model_id"] == model]
        for k, (_tol, g) in enumerate(sorted(m.groupby("tolerance"))):
            g = g.sort_values("step")
            style = dict(marker=".", ms=2, lw=1, color=ctx.colors[model], alpha=0.3 + 0.7 * k / 9)
            axes[0].plot(ctx.x(model, g["step"]), g["rank"], label=f"{model}" if k == 9 else None, **style)
            axes[1].plot(ctx.x(model, g["step"]), g["rank_diff"], **style)
    b = int(cov["batch_size"].iloc[0]) if len(cov) else 0
    for ax, label in zip(axes, (f"rank of cov(W_U V), B = {b}", "first difference of the rank")):
        ctx.mark_capability(ax)
        ctx.step_axis(ax)
        ax.set_ylabel(label)
    axes[0].set_title("tolerance 0.1 (light) .. 1.0 (dark)", fontsize=9)
    axes[0].legend(fontsize=7)
    return png(fig)


def params_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_perplexity"):
        ppl = ctx.df(
            "select model_id, step, dataset, method, perplexity from marts.fct_perplexity "
            "where list_contains($models, model_id) and perplexity is not null"
        )
        for method, caption in (
            (
                "forward",
                "Perplexity of a forward pass over each evaluation set during training - the "
                "seed's Figure 4 (linear y).",
            ),
            (
                "causal_unmasking",
                "Perplexity under causal unmasking (every prefix of each item) during "
                "training - the seed's Figure 6 (log y).",
            ),
        ):
            rows = ppl[ppl["method"] == method]
            if len(rows):
                log_y = method == "causal_unmasking"
                figures.append(
                    Figure(
                        f"perplexity_{method}",
                        curves(
                            ctx,
                            rows,
                            ["dataset", "method"],
                            "perplexity",
                            "perplexity (log)" if log_y else "perplexity",
                            log_y,
                        ),
                        caption,
                    )
                )
    if ctx.has("fct_covariance_rank"):
        cov = ctx.df(
            "select model_id, step, batch_size, tolerance, tensor_name, rank, rank_diff "
            "from marts.fct_covariance_rank where list_contains($models, model_id) and "
            "batch_size = coalesce((select max(batch_size) from marts.fct_covariance_rank "
            "where batch_size = 64), (select max(batch_size) from marts.fct_covariance_rank))"
        )
        figures.append(
            Figure(
                "covariance_rank",
                covariance_panels(ctx, cov),
                "Rank of the covariance over a batch of B Gaussian vectors of W_U V (V ~ N(0, I_d)) "
                "at absolute tolerances 0.1 .. 1.0, and its first difference between ingested "
                "checkpoints - the seed's Figure 7.",
            )
        )
    return build_section(
        ctx,
        "params",
        "Parameter dynamics: perplexity and covariance rank",
        figures,
        [
            (
                "fct_stationarity",
                "Stationarity (per tensor; zero-initialised tensors are excluded)",
                "select model_id, tensor_name, stationarity_status, stationary_step, fraction_of_training_saved "
                "from marts.fct_stationarity where list_contains($models, model_id) order by 1, 2 limit 60",
            )
        ],
    )


def aligned_signals(ctx: Context, align: pd.DataFrame) -> bytes:
    """Per model (rows), the step of each signal's change, on one step axis."""
    cols = [c for c in SIGNALS if c in align.columns]
    fig, axes = panels(1, width=9, height=1.2 + 0.6 * len(ctx.models))
    ax = axes[0]
    markers = "o^sDvP"
    for i, model in enumerate(ctx.models):
        rows = align[align["model_id"] == model]
        for j, col in enumerate(cols):
            vals = rows[col].dropna().to_numpy(dtype=float)
            if len(vals):
                y = i + 0.08 * (j - 2)
                ax.scatter(
                    ctx.x(model, vals),
                    np.full(len(vals), y),
                    marker=markers[j % len(markers)],
                    color=f"C{j}",
                    label=SIGNALS[col],
                    zorder=3,
                )
                lo_col, hi_col = col.replace("_step", "") + "_prev_step", col.replace("_step", "") + "_next_step"
                if lo_col in rows.columns:  # the ingested checkpoints that bracket it
                    lo = rows[lo_col].fillna(rows[col]).to_numpy(dtype=float)
                    hi = rows[hi_col].fillna(rows[col]).to_numpy(dtype=float)
                    ax.hlines(np.full(len(lo), y), ctx.x(model, lo), ctx.x(model, hi), color=f"C{j}", lw=1)
    for i, model in enumerate(ctx.models):
        ctx.mark_capability(ax, [model], y=(i - 0.35, i + 0.35))
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_yticks(range(len(ctx.models)), ctx.models)
    ax.set_ylim(-0.6, len(ctx.models) - 0.4)
    ctx.step_axis(ax)
    return png(fig)


def alignment_table(align: pd.DataFrame) -> pd.DataFrame:
    """fct_phase_alignment turned to fit a page: one row per signal, one column per model, each
    cell 'step (prev .. next)', the censored MSD peak shown with its reason, and the spread."""

    def cell(r, col: str) -> str:
        if col == "msd_peak_step" and r.get("msd_peak_status") not in (None, "peak") and pd.isna(r[col]):
            return str(r["msd_peak_status"])
        if pd.isna(r[col]):
            return "-"
        base = col.replace("_step", "")
        lo, hi = r.get(base + "_prev_step"), r.get(base + "_next_step")
        if base + "_prev_step" not in r:
            return str(int(r[col]))
        return f"{int(r[col])} ({'' if pd.isna(lo) else int(lo)} .. {'' if pd.isna(hi) else int(hi)})"

    rows = {label: [cell(r, col) for _, r in align.iterrows()] for col, label in SIGNALS.items() if col in align}
    rows["spread (steps)"] = ["-" if pd.isna(v) else str(int(v)) for v in align["spread_steps"]]
    rows["signals counted"] = [str(int(v)) for v in align["n_signals"]]
    return pd.DataFrame(rows, index=list(align["model_id"])).T.rename_axis("signal").reset_index()


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
        ctx.mark_capability(ax, [model])
        ax.set_yticks(range(len(signals)), signals, fontsize=7)
        ax.set_xlabel(ctx.xlabel)
        ax.set_title(model, fontsize=10)
    return png(fig)


def phases_section(ctx: Context) -> Section | None:
    section = Section("phases", "Phases: change points of every signal, aligned")
    if ctx.has("fct_phase_alignment"):
        align = ctx.df(
            "select * from marts.fct_phase_alignment where list_contains($models, model_id) order by model_id"
        )
        if align[[c for c in SIGNALS if c in align.columns]].notna().any().any():
            section.figures.append(
                Figure(
                    "aligned_signals",
                    aligned_signals(ctx, align),
                    "When each signal changes: MSD peak (only a real peak), perplexity "
                    "drops, covariance-rank drop, stationarity; each line spans the "
                    "ingested checkpoints before and after the step (METHODS, phase "
                    "alignment).",
                )
            )
        section.tables.append(
            ("Phase alignment: step of each signal (previous .. next ingested checkpoint)", alignment_table(align))
        )
    llc = llc_figure(ctx)  # the LLC curve under the aligned signals
    if llc is not None:
        section.figures.append(llc)
    if ctx.has("fct_phases"):
        phases = ctx.df(
            "select model_id, signal, phase, start_step, end_step from marts.fct_phases "
            "where list_contains($models, model_id)"
        )
        section.figures.append(
            Figure(
                "phase_spans", phase_spans(ctx, phases), "Training phases of each signal (change-point segmentation)."
            )
        )
    return section if section.figures or section.tables else None
