"""Serving speed on a Pythia-shaped synthetic warehouse (benchmarks/make_synthetic_warehouse.py).

Prints: snapshot publish time; the median latency of every query `tdw report` runs (recorded
while it writes a report) and of the README's example queries on the snapshot, each against
the 100 ms target; `tdw report` for 3 models in-process and as the CLI (target < 30 s); peak
memory of the report. Baseline for the queries: the same SQL through `warehouse.sql.query`,
which opens a connection per query; for the report: the same queries run back to back on
one connection (the rest of a report is drawing), each measured in the same run.

Issue 19 asks for these figures on a busy machine: unless ``--quiet``, the benchmark keeps
every core busy itself (one spinning process per core, each ending on its own after
``--busy-seconds``, and stopped when the benchmark ends) while it measures, and prints the
load average with every figure.

    python benchmarks/bench_serving.py [--warehouse PATH] [--repeats 5] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402
from _common import load_average, median_ms  # noqa: E402
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


def start_busy(seconds: float) -> list[subprocess.Popen]:
    """One spinning process per core, each exiting by itself after ``seconds``."""
    spin = f"import time\nt = time.monotonic() + {seconds}\nwhile time.monotonic() < t:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


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
    ap.add_argument("--quiet", action="store_true", help="do not load the cores while measuring")
    ap.add_argument("--busy-seconds", type=float, default=900, help="upper bound on the background load")
    args = ap.parse_args()
    repeats = max(5, args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    wh = args.warehouse
    if wh is None:
        wh = tmp / "pythia.duckdb"
        t = time.perf_counter()
        counts = make(wh, ["14m", "31m", "70m", "160m", "410m", "1b"])
        print(f"generated {wh}: {sum(counts.values()):,} mart rows in {time.perf_counter() - t:.1f} s")
    busy = [] if args.quiet else start_busy(args.busy_seconds)
    try:
        measure(wh, tmp, repeats, busy)
    finally:
        stop_busy(busy)
        shutil.rmtree(tmp, ignore_errors=True)


def measure(wh: Path, tmp: Path, repeats: int, busy: list) -> None:
    print(
        f"background load: {len(busy)} spinning processes (one per core)" if busy else "background load: none (--quiet)"
    )
    from warehouse.snapshot import publish, snapshot_path

    pub = [publish(wh).seconds for _ in range(3)]
    print(
        f"publish snapshot ({snapshot_path(wh).stat().st_size / 2**20:.0f} MiB): median "
        f"{statistics.median(pub):.2f} s over 3 (target < 5 s); {load_average()}"
    )

    queries = recorded_report_queries(wh, tmp / "warmup" / "report.html")
    con = duckdb.connect(str(snapshot_path(wh)), read_only=True)
    print(
        f"\n{len(queries)} report queries + {len(README_QUERIES)} README queries, median of {repeats} "
        "(open connection | warehouse.sql.query, connection per query = baseline):"
    )
    from warehouse.sql import query

    worst, total = 0.0, 0.0
    for i, (sql, params) in enumerate(queries + [(q, {}) for q in README_QUERIES]):
        ms = median_ms(lambda: con.execute(sql, params).df(), repeats)
        worst = max(worst, ms)
        total += ms if i < len(queries) else 0.0
        label = "report" if i < len(queries) else "README"
        extra = ""
        if not params:
            base = median_ms(lambda: query(wh, sql), repeats)
            extra = f" | {base:7.1f} ms ({ms / base:.2f}x)"
        print(f"  {label} {ms:7.1f} ms{extra}  {' '.join(sql.split())[:90]}")
    con.close()
    print(f"slowest median: {worst:.1f} ms (target < 100 ms); {load_average()}")

    from analysis.report import write_report

    runs = []
    for k in range(repeats):
        r = write_report(wh, REPORT_MODELS, tmp / f"r{k}" / "report.html")
        runs.append(r.seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median(runs)
    print(
        f"\nreport for 3 models in-process: median {med:.1f} s over {repeats} "
        f"= {med / (total / 1000):.1f}x its {len(queries)} queries alone ({total / 1000:.2f} s, same run), "
        f"{len(r.figures)} figures, peak RSS of this process {peak:.0f} MiB; {load_average()}"
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
        env={**os.environ, "TDW_DATA_DIR": str(tmp)},  # the CLI writes only under its data directory
    )
    print(
        f"`tdw report` CLI for 3 models (with interpreter start and imports): "
        f"{time.perf_counter() - t:.1f} s (target < 30 s); {load_average()}"
    )


if __name__ == "__main__":
    main()
