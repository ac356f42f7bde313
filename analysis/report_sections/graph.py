"""The component causal graph: node roles over training (spreaders, gatherers), the edge-weight
distribution, and the graph itself at chosen checkpoints (METHODS §A).

Every figure uses one (task, ablation) slice: task ``induction`` when a model has it, and the
first ablation type in name order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report_sections import Context, Figure, Section, panels, png

TOP = 3
MAX_EDGES = 80
LABELLED = 12  # edges whose end nodes are labelled in the graph figure


def _slice(ctx: Context, table: str) -> tuple[str, str] | None:
    rows = ctx.df(
        f"select task, ablation, count(distinct model_id) as n from marts.{table} "
        "where list_contains($models, model_id) group by 1, 2 "
        "order by n desc, task <> 'induction', task, ablation limit 1"
    )
    return (rows["task"][0], rows["ablation"][0]) if len(rows) else None


def roles_figure(ctx: Context, task: str, ablation: str) -> bytes:
    """Out-strength of each model's top spreaders and in-strength of its top gatherers (ranked at
    the last checkpoint) over training."""
    cen = ctx.df(
        """
        with c as (select model_id, step, node, in_strength, out_strength from marts.fct_node_centrality
                   where list_contains($models, model_id) and task = $task and ablation = $abl),
        last as (select c.* from c join (select model_id, max(step) as step from c group by 1) using (model_id, step)),
        top as (select model_id, node from last
                qualify row_number() over (partition by model_id order by out_strength desc) <= $k
                union select model_id, node from last
                qualify row_number() over (partition by model_id order by in_strength desc) <= $k)
        select c.* from c semi join top using (model_id, node)""",
        task=task,
        abl=ablation,
        k=TOP,
    )
    models = [m for m in ctx.models if m in set(cen["model_id"])]
    fig, axes = panels(len(models))
    for ax, model in zip(axes, models):
        c = cen[cen["model_id"] == model]
        last = c[c["step"] == c["step"].max()]
        for col, style, role in (("out_strength", "-", "spreader"), ("in_strength", "--", "gatherer")):
            for node in last.nlargest(TOP, col)["node"]:
                g = c[c["node"] == node].sort_values("step")
                ax.plot(ctx.x(model, g["step"]), g[col], style, marker=".", ms=3, label=f"{role} {node}")
        ctx.mark_capability(ax, [model])
        ctx.step_axis(ax)
        ax.set_ylabel("strength (sum of edge weights)")
        ax.set_title(model, fontsize=10)
        ax.legend(fontsize=6)
    return png(fig)


def distribution_figure(ctx: Context, task: str, ablation: str) -> bytes:
    """Gini of the edge weights over training (left) and each model's histogram at its last
    checkpoint (right, log-spaced bins)."""
    dist = ctx.df(
        "select model_id, step, gini, hist_edges, hist_counts from marts.fct_edge_weight_distribution "
        "where list_contains($models, model_id) and task = $task and ablation = $abl order by step",
        task=task,
        abl=ablation,
    )
    fig, (ax_g, ax_h) = panels(2, width=5.2)
    for model in ctx.models:
        d = dist[dist["model_id"] == model]
        if not len(d):
            continue
        ax_g.plot(ctx.x(model, d["step"]), d["gini"], marker=".", color=ctx.colors[model], label=model)
        last = d.iloc[-1]
        edges, counts = np.asarray(last["hist_edges"], dtype=float), np.asarray(last["hist_counts"], dtype=float)
        if len(edges) == len(counts) + 1 and counts.sum() > 0:
            ax_h.stairs(counts / counts.sum(), edges, color=ctx.colors[model], label=f"{model} @ {int(last['step'])}")
    ctx.mark_capability(ax_g)
    ctx.step_axis(ax_g)
    ax_g.set_ylabel("Gini of edge weights")
    ax_h.set_xscale("log")
    ax_h.set_xlabel("edge weight")
    ax_h.set_ylabel("fraction of edges")
    for ax in (ax_g, ax_h):
        ax.legend(fontsize=7)
    return png(fig)


def _pick_steps(available: list[int], wanted: list[int] | None) -> list[int]:
    if wanted:
        return [min(available, key=lambda s: abs(s - w)) for w in wanted][:4]
    return sorted({available[0], available[len(available) // 2], available[-1]})


def _layout(nodes: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """x = layer (embed -1, logits last), y = the node's position within its layer."""
    pos = {}
    for _, g in nodes.groupby("layer"):
        names = sorted(g["node"])
        for i, n in enumerate(names):
            pos[n] = (float(g["layer"].iloc[0]), i - (len(names) - 1) / 2)
    return pos


def graph_figure(ctx: Context, task: str, ablation: str) -> bytes:
    """Each model (rows) at up to four checkpoints (columns): nodes by layer, the strongest edges
    drawn with width and opacity by weight."""
    avail = ctx.df(
        "select distinct model_id, step from marts.fct_node_centrality "
        "where list_contains($models, model_id) and task = $task and ablation = $abl",
        task=task,
        abl=ablation,
    )
    models = [m for m in ctx.models if m in set(avail["model_id"])]
    chosen = {
        m: _pick_steps(sorted(avail.loc[avail["model_id"] == m, "step"].unique()), ctx.graph_steps) for m in models
    }
    steps = sorted({int(s) for ss in chosen.values() for s in ss})
    # only the chosen checkpoints' strongest edges leave DuckDB
    edges = ctx.df(
        "select model_id, step, src, dst, weight from marts.fct_graph_edges "
        "where list_contains($models, model_id) and list_contains($steps, step) "
        "and task = $task and ablation = $abl "
        "qualify row_number() over (partition by model_id, step order by weight desc) <= $top",
        steps=steps,
        task=task,
        abl=ablation,
        top=MAX_EDGES,
    )
    nodes = ctx.df(
        "select model_id, step, node, layer from marts.fct_node_centrality "
        "where list_contains($models, model_id) and list_contains($steps, step) "
        "and task = $task and ablation = $abl",
        steps=steps,
        task=task,
        abl=ablation,
    )
    cols = max(len(s) for s in chosen.values())
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    fig, axes = plt.subplots(len(models), cols, figsize=(3.6 * cols, 3.2 * len(models)), dpi=90, squeeze=False)
    for r, model in enumerate(models):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(chosen[model]):
                continue
            step = chosen[model][c]
            e = edges[(edges["model_id"] == model) & (edges["step"] == step)]
            pos = _layout(nodes[(nodes["model_id"] == model) & (nodes["step"] == step)])
            top = e["weight"].max() if len(e) else 1.0
            drawn = [r for r in e.itertuples() if r.src in pos and r.dst in pos] if top > 0 else []
            if drawn:  # one collection, not a line artist per edge
                w = np.array([max(r.weight, 0) / top for r in drawn])
                colors = np.tile(np.array(to_rgba("C3")), (len(drawn), 1))
                colors[:, 3] = 0.15 + 0.75 * w
                segs = [[pos[r.src], pos[r.dst]] for r in drawn]
                ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.4 + 2.5 * w))
            if pos:
                xy = np.array(list(pos.values()))
                ax.scatter(xy[:, 0], xy[:, 1], s=14, color="C0", zorder=3)
                # labels (embed, L0.H1, L1.MLP, logits) on the nodes of the strongest edges: a
                # large model's hundreds of heads would be an unreadable (and slow) wall of text
                strongest = sorted(drawn, key=lambda r: -r.weight)[:LABELLED]
                named = {n for r in strongest for n in (r.src, r.dst)} or set(pos)
                for name in sorted(named):
                    x, y = pos[name]
                    t = ax.annotate(name, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, zorder=4)
                    t.set_in_layout(False)
            ax.set_title(f"{model} @ step {step}", fontsize=8)
    return png(fig)


def graph_section(ctx: Context) -> Section | None:
    figures = []
    if ctx.has("fct_node_centrality") and (sl := _slice(ctx, "fct_node_centrality")):
        figures.append(
            Figure(
                "node_roles",
                roles_figure(ctx, *sl),
                f"Node roles over training ({sl[0]}, {sl[1]}): top {TOP} spreaders (out-strength, "
                f"solid) and gatherers (in-strength, dashed) of the last checkpoint.",
            )
        )
    if ctx.has("fct_edge_weight_distribution") and (sl := _slice(ctx, "fct_edge_weight_distribution")):
        figures.append(
            Figure(
                "edge_weights",
                distribution_figure(ctx, *sl),
                f"Edge-weight distribution ({sl[0]}, {sl[1]}): Gini over training and the histogram "
                "at the last checkpoint.",
            )
        )
    if ctx.has("fct_graph_edges") and ctx.has("fct_node_centrality") and (sl := _slice(ctx, "fct_node_centrality")):
        figures.append(
            Figure(
                "graph",
                graph_figure(ctx, *sl),
                f"The causal graph ({sl[0]}, {sl[1]}) at chosen checkpoints: nodes by layer "
                f"(embed left, logits right), the {MAX_EDGES} strongest edges.",
            )
        )
    if not figures:
        return None
    return Section("graph", "Component graph: roles, edge weights, the graph", figures)
