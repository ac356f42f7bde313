"""Serving speed on a Pythia-shaped synthetic warehouse (benchmarks/make_synthetic_warehouse.py).

Prints: snapshot publish time; the median latency of every query `tdw report` runs (recorded
while it writes a report) and of the README's example queries on the snapshot, each against
the 100 ms target; `tdw report` for 3 models in-process and as the CLI (target < 30 s); peak
memory of the report. Baseline for the queries: the same SQL through `warehouse.sql.query`,
which opens a connection per query.

    python benchmarks/bench_serving.py [--warehouse PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402
from _common import median_ms  # noqa: E402
from make_synthetic_warehouse import make  # noqa: E402

REPORT_MODELS = ["EleutherAI/pythia-70m", "EleutherAI/pythia-410m", "EleutherAI/pythia-1b"]
README_QUERIES = [
    "select model_id, tensor_name, peak_step, round(fall_ratio, 3) from marts.fct_bifurcation order by 1, 2",
    "select bin_lo, density from marts.fct_weight_density where model_id = 'EleutherAI/pythia-410m' "
    "and tensor_name = 'lm_head.weight' and step = 143000 order by bin_index",
    "select model_id, step, perplexity from marts.fct_perplexity where dataset = 'wikitext' and method = 'forward' "
    "order by 1, 2",
    "select model_id, node, avg(out_strength) as mean_out from marts.fct_node_centrality "
    "where task = 'induction' group by all order by mean_out desc limit 10",
    "select model_id, step, count(*) as edges, avg(weight) from marts.fct_graph_edges "
    "where model_id = 'EleutherAI/pythia-160m' and step = 143000 group by all",
]


def recorded_report_queries(warehouse: Path, out: Path) -> list[tuple[str, dict]]:
    """Every (sql, params) the report runs, captured by wrapping Context.df."""
    from analysis import report_sections
    from analysis.report import write_report

    seen: list[tuple[str, dict]] = []
    original = report_sections.Context.df

    def recording(self, sql, **params):
        seen.append((sql, {"models": self.models, **params} if "$models" in sql else params))
        return original(self, sql, **params)

    report_sections.Context.df = recording
    try:
        write_report(warehouse, REPORT_MODELS, out)
    finally:
        report_sections.Context.df = original
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse", type=Path, default=None, help="reuse a generated warehouse")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    wh = args.warehouse
    if wh is None:
        wh = tmp / "pythia.duckdb"
        t = time.perf_counter()
        counts = make(wh, ["14m", "31m", "70m", "160m", "410m", "1b"])
        print(f"generated {wh}: {sum(counts.values()):,} mart rows in {time.perf_counter() - t:.1f} s")

    from warehouse.snapshot import publish, snapshot_path

    pub = [publish(wh).seconds for _ in range(3)]
    print(
        f"publish snapshot ({snapshot_path(wh).stat().st_size / 2**20:.0f} MiB): median "
        f"{statistics.median(pub):.2f} s over 3 (target < 5 s)"
    )

    queries = recorded_report_queries(wh, tmp / "warmup" / "report.html")
    con = duckdb.connect(str(snapshot_path(wh)), read_only=True)
    print(
        f"\n{len(queries)} report queries + {len(README_QUERIES)} README queries, median of {args.repeats} "
        "(open connection | warehouse.sql.query, connection per query):"
    )
    from warehouse.sql import query

    worst = 0.0
    for i, (sql, params) in enumerate(queries + [(q, {}) for q in README_QUERIES]):
        ms = median_ms(lambda: con.execute(sql, params).df(), args.repeats)
        worst = max(worst, ms)
        label = "report" if i < len(queries) else "README"
        extra = ""
        if not params:
            extra = f" | {median_ms(lambda: query(wh, sql), args.repeats):7.1f} ms"
        print(f"  {label} {ms:7.1f} ms{extra}  {' '.join(sql.split())[:90]}")
    con.close()
    print(f"slowest median: {worst:.1f} ms (target < 100 ms)")

    from analysis.report import write_report

    runs = []
    for k in range(3):
        r = write_report(wh, REPORT_MODELS, tmp / f"r{k}" / "report.html")
        runs.append(r.seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nreport for 3 models in-process: median {statistics.median(runs):.1f} s over 3, "
        f"{len(r.figures)} figures, peak RSS of this process {peak:.0f} MiB"
    )
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tdw",
            "report",
            "--models",
            ",".join(REPORT_MODELS),
            "--warehouse",
            str(wh),
            "--out",
            str(tmp / "cli" / "report.html"),
        ],
        check=True,
    )
    print(
        f"`tdw report` CLI for 3 models (with interpreter start and imports): "
        f"{time.perf_counter() - t:.1f} s (target < 30 s)"
    )


if __name__ == "__main__":
    main()
