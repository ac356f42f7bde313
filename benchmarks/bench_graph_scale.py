"""Benchmark: the graph marts' per-graph cost on Pythia-shaped graphs, 14M to 12B.

Why: the suite is 10 Pythia sizes x 154 checkpoints, one graph per checkpoint, task and
ablation; every graph mart (dbt Python model) calls one function of ``analysis.graph_frames``
per graph. Before issue 20 the edge-weight tail fit rescanned every tail for every candidate
x_min, O(E^2): 719 s for one 410M-shaped graph, ~35 h projected for a 12B-shaped one.

Graphs: the node and edge sets the graph probe builds for GPT-NeoX with the parallel residual
(``ingest.probes.graph.adapters``: embed, every head and MLP, logits; an edge from each node to
every node of a later layer and to logits), with seeded synthetic weights shaped like the
probe's 1 - cos (a lognormal bulk with a Pareto tail, in [0, 2]).

Per size and per mart function (as the dbt model calls it, on a one-graph frame): median
seconds over ``--repeats`` runs, and the peak memory above the resident size before the call
(Linux VmHWM after resetting it through /proc/self/clear_refs, so NetworKit's C++ memory
counts). The old O(E^2) x_min scan (kept in ``tests/unit/test_graph_analysis.py``) is timed in
the same run on the sizes where it is affordable (``--old-max-edges``) and its result checked
equal. Then the fitted growth exponent of seconds vs E (log-log least squares), the projected
build time of the suite (154 checkpoints per size, one task and ablation: the probe's
defaults), and a log-log plot of seconds vs E written to ``--out`` (a PNG).

    python benchmarks/bench_graph_scale.py [--repeats 3] [--sizes 14m,70m,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from _common import ROOT, timed

from analysis import graph as ag
from analysis import graph_frames as gf

# (layers, heads) of the Pythia suite (d_model does not change the graph's shape)
SIZES = {
    "14m": (6, 4),
    "31m": (6, 8),
    "70m": (6, 8),
    "160m": (12, 12),
    "410m": (24, 16),
    "1b": (16, 8),
    "1.4b": (24, 16),
    "2.8b": (32, 32),
    "6.9b": (32, 32),
    "12b": (36, 40),
}
CHECKPOINTS = 154
MARTS = ["int_graph_centrality", "int_graph_weight_distribution", "int_graph_circuits", "fct_role_stability"]
KEY = {"model_id": "bench", "step": 0, "task": "induction", "ablation": "zero"}


def pythia_graph(layers: int, heads: int, seed: int = 0) -> pd.DataFrame:
    """One graph's edges (the frame a graph model sees: key columns, src, dst, weight)."""
    from ingest.probes.graph.adapters import adapter_for

    cfg = SimpleNamespace(
        model_type="gpt_neox",
        num_hidden_layers=layers,
        num_attention_heads=heads,
        hidden_size=64 * heads,
        head_dim=None,
        max_position_embeddings=2048,
        vocab_size=50304,
        use_parallel_residual=True,
    )
    edges = adapter_for(cfg).graph_edges()
    rng = np.random.default_rng(seed)
    n = len(edges)
    w = rng.lognormal(-4.5, 1.2, n)
    tail = rng.random(n) < 0.05
    w[tail] = 0.02 * (1 - rng.random(int(tail.sum()))) ** (-1 / 1.8)
    w = np.clip(w, 1e-9, 2.0)
    return pd.DataFrame(
        {
            **{k: [v] * n for k, v in KEY.items()},
            "src": [e[0] for e in edges],
            "dst": [e[1] for e in edges],
            "weight": w,
        }
    )


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def peak_bytes(fn) -> tuple[int, int]:
    """(peak of Python and numpy allocations during ``fn()`` (tracemalloc), peak resident
    memory above the resident size before it: VmHWM reset through /proc/self/clear_refs,
    so NetworKit's C++ allocations count too; -1 where Linux does not allow it)."""
    import tracemalloc

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _vm("VmRSS:")
    except OSError:
        base = None
    tracemalloc.start()
    fn()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return py_peak, (max(_vm("VmHWM:") - base, 0) if base is not None else -1)


def old_choose_xmin(x: np.ndarray, min_tail: int = 10) -> float:
    """The O(E^2) scan replaced in issue 20 (kept as the test's reference)."""
    return _choose_xmin_reference(x, min_tail)


sys.path.insert(0, str(ROOT / "tests" / "unit"))
from test_graph_analysis import _choose_xmin_reference  # noqa: E402


def marts(edges: pd.DataFrame) -> dict:
    """Every graph mart's function on one graph, as the dbt models call it."""
    cent = gf.centrality_frame(edges)
    prev = cent.assign(step=-1, in_strength=cent["in_strength"][::-1].to_numpy())
    return {
        "int_graph_centrality": lambda: gf.centrality_frame(edges),
        "int_graph_weight_distribution": lambda: gf.distribution_frame(edges, bins=20),
        "int_graph_circuits": lambda: gf.circuits_frame(edges, k=5),
        "fct_role_stability": lambda: gf.stability_frame(pd.concat([prev, cent]), k=5),
    }


def growth_exponent(e: list[int], s: list[float]) -> float:
    return float(np.polyfit(np.log(e), np.log(s), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument(
        "--old-max-edges",
        type=int,
        default=25_000,
        help="time the old O(E^2) x_min scan on graphs up to this many edges",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = ap.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    rows = []
    for name in sizes:
        layers, heads = SIZES[name]
        edges = pythia_graph(layers, heads)
        e, nodes = len(edges), layers * (heads + 1) + 2
        row = {"size": name, "layers": layers, "heads": heads, "nodes": nodes, "edges": e}
        for mart, fn in marts(edges).items():
            row[mart] = timed(fn, args.repeats)[0]
            row[f"{mart}_peak"], row[f"{mart}_rss"] = peak_bytes(fn)
        w = edges["weight"].to_numpy()
        row["xmin_new"] = timed(lambda: ag.choose_xmin(w), args.repeats)[0]
        if e <= args.old_max_edges:
            row["xmin_old"] = timed(lambda: old_choose_xmin(w), 1)[0]
            assert old_choose_xmin(w) == ag.choose_xmin(w), f"{name}: x_min differs from the O(E^2) scan"
        row["total"] = sum(row[m] for m in MARTS)
        rows.append(row)
        print(
            f"{name:>5}: {nodes:5d} nodes {e:9d} edges  all marts {row['total']:7.2f} s"
            + (
                f"  (x_min new {row['xmin_new']:.3f} s, old {row['xmin_old']:.2f} s)"
                if "xmin_old" in row
                else f"  (x_min new {row['xmin_new']:.3f} s)"
            ),
            flush=True,
        )
    report(pd.DataFrame(rows), Path(args.out))


def report(df: pd.DataFrame, out: Path) -> None:
    mart_names = MARTS
    print("\nmedian seconds per graph (peak MiB: Python/numpy allocations by tracemalloc / resident growth)")
    print(f"{'size':>5} {'edges':>9} " + " ".join(f"{m[-28:]:>30}" for m in mart_names) + f" {'total':>8}")
    for _, r in df.iterrows():
        print(
            f"{r['size']:>5} {r['edges']:9d} "
            + " ".join(
                f"{r[m]:8.3f} s ({r[m + '_peak'] / 2**20:6.1f}/{r[m + '_rss'] / 2**20:6.1f})" for m in mart_names
            )
            + f" {r['total']:8.2f}"
        )
    if "xmin_old" in df:
        print("\nx_min search, old O(E^2) scan vs branch and bound (same run, results equal):")
        for _, r in df.dropna(subset=["xmin_old"]).iterrows():
            print(
                f"{r['size']:>5} {r['edges']:9d} edges: old {r['xmin_old']:8.2f} s, new {r['xmin_new']:7.3f} s, "
                f"speed-up {r['xmin_old'] / r['xmin_new']:7.1f}x"
            )
        old = df.dropna(subset=["xmin_old"])
        if len(old) >= 2:
            print(
                f"growth exponent of the old scan (seconds ~ E^k): k = "
                f"{growth_exponent(old['edges'].tolist(), old['xmin_old'].tolist()):.2f}"
            )
    big = df[df["edges"] >= 10_000]
    fit = big if len(big) >= 3 else df
    print("\ngrowth exponents (seconds ~ E^k, fitted on graphs >= 10k edges; E log E shows as k a little above 1):")
    for m in mart_names + ["xmin_new", "total"]:
        print(f"  {m:32s} k = {growth_exponent(fit['edges'].tolist(), fit[m].tolist()):.2f}")
    per_size = dict(zip(df["size"], df["total"]))
    suite = sum(per_size.values()) * CHECKPOINTS
    print(
        f"\nprojected suite build ({len(per_size)} sizes x {CHECKPOINTS} checkpoints, one task and ablation, "
        f"one core): {suite / 3600:.1f} h ({suite / 86400:.2f} CPU-days); per size: "
        + ", ".join(f"{k} {v * CHECKPOINTS / 60:.1f} min" for k, v in per_size.items())
    )
    if "12b" in per_size:
        print(f"12B-shaped graph, all marts: {per_size['12b']:.1f} s (goal < 60 s)")
    plot(df, mart_names, out)


def plot(df: pd.DataFrame, mart_names: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    df = df.sort_values(["edges", "size"])
    df.to_csv(out / "graph_scale.csv", index=False)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    same_shape = df.groupby("edges")[mart_names + ["total"]].median()  # 31m/70m, 410m/1.4b, 2.8b/6.9b
    for m in mart_names + ["total"]:
        ax.plot(same_shape.index, same_shape[m], marker="o", label=m)
    if "xmin_old" in df:
        old = df.dropna(subset=["xmin_old"])
        ax.plot(old["edges"], old["xmin_old"], marker="x", ls="--", color="k", label="old O(E^2) x_min scan")
    e = np.array(sorted(df["edges"]))
    ref = df.loc[df["edges"].idxmax(), "total"] * (e * np.log(e)) / (e[-1] * np.log(e[-1]))
    ax.plot(e, ref, ls=":", color="grey", label="E log E (through the largest total)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="edges per graph (E)",
        ylabel="seconds per graph (median)",
        title="Graph marts on Pythia-shaped graphs, 14M to 12B",
    )
    for e_, names in df.groupby("edges", sort=False)["size"]:
        ax.annotate(
            "/".join(names), (e_, same_shape.loc[e_, "total"]), fontsize=7, xytext=(-10, 6), textcoords="offset points"
        )
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "graph_scale.png"
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
