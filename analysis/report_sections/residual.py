"""The residual stream: mean trajectories through depth in a PCA plane, and the per-layer
dynamics (continuity, velocity) at the first and last checkpoints (METHODS, residual dynamics)."""

from __future__ import annotations

from analysis.report_sections import Context, Figure, Section, panels, png


def _steps(frame, model: str) -> list[int]:
    steps = sorted(frame.loc[frame["model_id"] == model, "step"].unique())
    return sorted({steps[0], steps[len(steps) // 2], steps[-1]}) if steps else []


def trajectory_figure(ctx: Context) -> bytes:
    basis = ctx.df(
        "select basis, count(*) as n from marts.fct_residual_trajectory "
        "where list_contains($models, model_id) group by 1 order by basis <> 'shared', n desc"
    )
    traj = ctx.df(
        "select model_id, step, layer, pc1, pc2 from marts.fct_residual_trajectory "
        "where list_contains($models, model_id) and prompt_index = -1 and basis = $b order by layer",
        b=basis["basis"][0],
    )
    models = [m for m in ctx.models if m in set(traj["model_id"])]
    fig, axes = panels(len(models))
    for ax, model in zip(axes, models):
        t = traj[traj["model_id"] == model]
        for k, step in enumerate(_steps(t, model)):
            g = t[t["step"] == step]
            ax.plot(g["pc1"], g["pc2"], marker="o", ms=3, color=f"C{k}", label=f"step {step}")
            ax.annotate("in", (g["pc1"].iloc[0], g["pc2"].iloc[0]), fontsize=6)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        ax.set_title(f"{model} ({basis['basis'][0]} basis)", fontsize=10)
        ax.legend(fontsize=7)
    return png(fig)


def dynamics_figure(ctx: Context) -> bytes:
    dyn = ctx.df(
        "select model_id, step, layer, continuity, velocity from marts.fct_residual_dynamics "
        "where list_contains($models, model_id) order by layer"
    )
    fig, (ax_c, ax_v) = panels(2, width=5.2)
    for model in ctx.models:
        d = dyn[dyn["model_id"] == model]
        if not len(d):
            continue
        steps = sorted(d["step"].unique())
        for step, style in ((steps[0], ":"), (steps[-1], "-")):
            g = d[d["step"] == step]
            for ax, col in ((ax_c, "continuity"), (ax_v, "velocity")):
                ax.plot(g["layer"], g[col], style, marker=".", color=ctx.colors[model], label=f"{model} @ {step}")
    for ax, label in ((ax_c, "continuity (unit Pearson r, l to l+1)"), (ax_v, "velocity ||h(l+1) - h(l)||")):
        ax.set_xlabel("sample point along depth")
        ax.set_ylabel(label)
        ax.legend(fontsize=6)
    return png(fig)


def residual_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_residual_trajectory"):
        figures.append(
            Figure(
                "trajectories",
                trajectory_figure(ctx),
                "Mean residual-stream trajectory through depth in its PCA plane at the first, "
                "middle and last checkpoints.",
            )
        )
    if ctx.has("fct_residual_dynamics"):
        figures.append(
            Figure(
                "dynamics",
                dynamics_figure(ctx),
                "Continuity and velocity of the residual stream along depth, first (dotted) and "
                "last (solid) checkpoints.",
            )
        )
    if not figures:
        return None
    return Section("residual", "Residual stream: trajectories and dynamics", figures)
