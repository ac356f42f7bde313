"""A synthetic warehouse shaped like the Pythia suite the seeds studied, for benchmarks only.

Six models with Pythia's layer and head counts (14M: 6 x 4, 31M: 6 x 8, 70M: 6 x 8,
160M: 12 x 12, 410M: 24 x 16, 1B: 16 x 8), 154 checkpoints each (0, 1, 2, 4 ... 512, then
every 1000 to 143000), and the marts the report and the README queries read, written
directly with DuckDB (not by dbt: the numbers are smooth random curves, only the shapes and
row counts matter). The graph is the full component graph (embed, every head, every MLP,
logits; an edge from each node to every node of a later layer), one task and one ablation.

    python benchmarks/make_synthetic_warehouse.py OUT.duckdb [--models 14m,31m]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

PYTHIA = {"14m": (6, 4), "31m": (6, 8), "70m": (6, 8), "160m": (12, 12), "410m": (24, 16), "1b": (16, 8)}
STEPS = [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))  # 154 checkpoints
TENSORS = ("lm_head.weight", "gpt_neox.embed_in.weight")

TABLES = {
    "dim_checkpoint": """
        select m.model_id, s.step, 'hub' as source, 'step' || s.step as revision,
               md5(m.model_id || s.step) as content_hash, s.idx as checkpoint_index
        from models m, steps s""",
    "fct_weight_density": """
        select m.model_id, t.tensor_name, null::integer as layer, 'unembedding' as param_kind, s.step,
               b.bin_index, -0.1 + b.bin_index * 0.002 as bin_lo, -0.1 + (b.bin_index + 1) * 0.002 as bin_hi,
               (1000 * exp(-((b.bin_index - 50) / (8 + 20 * s.frac)) ^ 2))::hugeint as count,
               exp(-((b.bin_index - 50) / (8 + 20 * s.frac)) ^ 2) as density
        from models m, steps s, tensors t, range(100) b(bin_index)""",
    "fct_weight_moments": """
        select m.model_id, t.tensor_name, null::integer as layer, 'unembedding' as param_kind, s.step,
               0.0 as mean, 0.02 * (1 + s.frac) as std, 0.1 * s.frac as skewness, 3 * s.frac as kurtosis,
               10 * (1 + s.frac) as l2_norm
        from models m, steps s, tensors t""",
    "fct_msd": """
        select m.model_id, t.tensor_name, s.step, s.frac * exp(-4 * s.frac) + 1e-6 as msd,
               0.5 * s.frac * exp(-4 * s.frac) + 1e-6 as msd_time_demeaned, 262144 as n_sampled,
               1000000 as n_total, false as is_exact
        from models m, steps s, tensors t""",
    "fct_bifurcation": """
        select model_id, tensor_name, arg_max(step, msd) as peak_step, max(msd) as peak_msd,
               max(step) as last_step, 0.5 as fall_ratio, 'peaked' as peak_status
        from fct_msd group by all""",
    "fct_perplexity": """
        select m.model_id, s.step, d.dataset, me.method, 20000 * exp(-6 * s.frac) + 20 as perplexity,
               ln(20000 * exp(-6 * s.frac) + 20) as log_perplexity
        from models m, steps s, (values ('wikitext'), ('induction')) d(dataset),
             (values ('forward'), ('unmasking')) me(method)""",
    "fct_covariance_rank": """
        select m.model_id, s.step, 128 as batch_size, 1e-3 as tolerance, 'lm_head.weight' as tensor_name,
               127 * (1 - 0.5 * s.frac) as rank, -0.5 as rank_diff
        from models m, steps s""",
    "fct_stationarity": """
        select m.model_id, t.tensor_name, 'stationary' as stationarity_status, 90000 as stationary_step,
               0.37 as fraction_of_training_saved
        from models m, tensors t""",
    "fct_phase_alignment": """
        select model_id, 'lm_head.weight' as tensor_name, 'wikitext' as dataset, 20000 as msd_peak_step,
               30000 as perplexity_drop_step, 31000 as unmasking_drop_step, 25000 as covariance_drop_step,
               90000 as stationarity_step, 50000 as capability_step, 70000 as spread_steps, 4 as n_signals,
               'peak' as msd_peak_status
        from models""",
    "fct_phases": """
        select model_id, 'graph_induction_zero' as signal, p.phase, p.phase as phase_index,
               [0, 16000, 60000][p.phase + 1] as start_step, [15000, 59000, 143000][p.phase + 1] as end_step
        from models, range(3) p(phase)""",
    "nodes": """
        select m.model_id, 'embed' as node, -1 as layer, null::integer as head from models m
        union all select m.model_id, 'L' || l.l || '.H' || h.h, l.l, h.h
            from models m, range(m.n_layers) l(l), range(m.n_heads) h(h)
        union all select m.model_id, 'L' || l.l || '.MLP', l.l, null from models m, range(m.n_layers) l(l)
        union all select m.model_id, 'logits', m.n_layers, null from models m""",
    "fct_graph_edges": """
        select a.model_id, s.step, 'induction' as task, 'zero' as ablation, a.node as src, b.node as dst,
               a.layer as src_layer, b.layer as dst_layer,
               abs(sin(hash(a.node || b.node) % 1000 + s.frac)) ^ 3 as weight, 0.01 as weight_std, 64 as n_prompts
        from nodes a join nodes b on a.model_id = b.model_id and b.layer > a.layer, steps s
        order by a.model_id, task, ablation, s.step""",  # as the dbt mart stores it
    "fct_node_centrality": """
        select model_id, step, task, ablation, src as node, max(src_layer) as layer,
               0.0 as in_strength, sum(weight) as out_strength, 0.0 as betweenness, 0.0 as pagerank
        from fct_graph_edges group by model_id, step, task, ablation, src""",
    "fct_edge_weight_distribution": """
        select m.model_id, s.step, 'induction' as task, 'zero' as ablation, 0.3 + 0.3 * s.frac as gini,
               2.5 as tail_index,
               [1e-4, 1e-3, 1e-2, 1e-1, 1.0] as hist_edges, [10, 40, 80, 20] as hist_counts
        from models m, steps s""",
    "fct_residual_dynamics": """
        select m.model_id, s.step, l.l as layer, 0.9 - 0.1 * s.frac as continuity, 1 + l.l * 0.1 as velocity,
               0.0 as acceleration, 3.0 as density
        from models m, steps s, range(m.n_layers + 1) l(l)""",
    "fct_residual_trajectory": """
        select m.model_id, s.step, 'shared' as basis, -1 as prompt_index, l.l as layer,
               cos(l.l / 3 + s.frac) as pc1, sin(l.l / 3 + s.frac) as pc2, 0.0 as pc3
        from models m, steps s, range(m.n_layers + 1) l(l)""",
}


def make(out: Path, models: list[str]) -> dict[str, int]:
    """Write the marts of ``models`` (keys of PYTHIA) into ``out``; rows per table."""
    out = Path(out)
    for p in (out, out.with_name(out.name + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(out))
    con.execute("create schema marts; use marts")
    con.execute(
        "create temp table models as select * from (values "
        + ", ".join(f"('EleutherAI/pythia-{k}', {PYTHIA[k][0]}, {PYTHIA[k][1]})" for k in models)
        + ") v(model_id, n_layers, n_heads)"
    )
    con.execute(
        "create temp table steps as select step, idx, step / 143000.0 as frac from (select unnest(?) as step, "
        "generate_subscripts(?, 1) - 1 as idx)",
        [STEPS, STEPS],
    )
    con.execute("create temp table tensors as select unnest(?) as tensor_name", [list(TENSORS)])
    counts = {}
    for name, sql in TABLES.items():
        temp = "temp " if name == "nodes" else ""
        con.execute(f"create {temp}table {name} as {sql}")
        counts[name] = con.execute(f"select count(*) from {name}").fetchone()[0]
    con.close()
    counts.pop("nodes")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", default=",".join(PYTHIA))
    args = ap.parse_args()
    t0 = time.perf_counter()
    counts = make(args.out, args.models.split(","))
    print(f"{args.out}: {sum(counts.values()):,} rows in {time.perf_counter() - t0:.1f} s")
    for name, n in counts.items():
        print(f"  marts.{name}: {n:,}")


if __name__ == "__main__":
    main()
