"""`tdw serve` speed against DuckDB queried directly, in the same run.

Prints medians for: a small (4-row) query on an open connection, directly (DuckDB) and
through `tdw serve` (psycopg 3, C implementation) — the overhead must stay within 2 ms;
a large result (all rows of a 7-column table) in rows/s, directly and through `tdw serve`;
the slowest connect of a burst of 50 simultaneous connections. With ``--baseline-src`` (a
checkout of an older `tdw`, e.g. main before the pgwire layer) its `tdw serve` is measured
the same way, for the before/after ratio.

    python benchmarks/bench_serve_clients.py [--rows 300000] [--repeats 200] [--baseline-src /work/main]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import psycopg  # noqa: E402
from _common import median_ms  # noqa: E402

from warehouse.serve_process import start_serve  # noqa: E402
from warehouse.snapshot import snapshot_path  # noqa: E402

SMALL = "select model_id, step, msd from marts.fct_msd where step < 4 order by step"
LARGE = "select * from marts.fct_msd"


def make(wh: Path, rows: int) -> None:
    con = duckdb.connect(str(snapshot_path(wh)))
    con.execute(f"""CREATE SCHEMA marts;
        CREATE TABLE marts.fct_msd AS SELECT 'EleutherAI/pythia-410m' AS model_id,
            'layer.' || (range % 24) AS tensor_name,
            range AS step, range / 7.0 AS msd, (range % 1000)::INT AS n, range % 2 = 0 AS ok,
            TIMESTAMP '2026-01-01' + INTERVAL (range) SECOND AS ts FROM range({rows})""")
    con.close()


def start(src: Path, wh: Path) -> tuple[subprocess.Popen, int]:
    py = src / ".venv" / "bin" / "python"
    return start_serve([str(py if py.exists() else sys.executable), "-m", "tdw"], wh, cwd=src)


def through(port: int, repeats: int, large_repeats: int) -> dict:
    con = psycopg.connect(host="127.0.0.1", port=port, user="bench", dbname="tdw", autocommit=True)
    small = median_ms(lambda: con.execute(SMALL).fetchall(), repeats)
    large = median_ms(lambda: con.execute(LARGE).fetchall(), large_repeats)
    con.close()

    def one(_):
        t = time.perf_counter()
        c = psycopg.connect(
            host="127.0.0.1", port=port, user="bench", dbname="tdw", autocommit=True, connect_timeout=30
        )
        c.execute("select 1").fetchall()
        c.close()
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(max_workers=50) as pool:
        burst = max(pool.map(one, range(50)))
    return {"small_ms": small, "large_ms": large, "burst_max_ms": burst}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--large-repeats", type=int, default=3)
    ap.add_argument("--baseline-src", type=Path, default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wh = Path(tmp) / "warehouse.duckdb"
        make(wh, a.rows)
        direct = duckdb.connect(str(snapshot_path(wh)), read_only=True)
        d_small = median_ms(lambda: direct.execute(SMALL).fetchall(), a.repeats)
        d_large = median_ms(lambda: direct.execute(LARGE).fetchall(), a.large_repeats)
        direct.close()
        runs = {}
        for name, src in (("tdw serve", Path(__file__).resolve().parent.parent), ("baseline", a.baseline_src)):
            if src is None:
                continue
            proc, port = start(src, wh)
            try:
                runs[name] = through(port, a.repeats, a.large_repeats)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), {a.rows} rows x 7 columns, medians")
    print(
        f"{'':12} {'small query ms':>15} {'overhead ms':>12} {'large rows/s':>13} "
        f"{'vs direct':>10} {'burst50 max ms':>15}"
    )
    print(f"{'direct':12} {d_small:15.3f} {'':>12} {a.rows / d_large * 1000:13,.0f} {'1.00':>10}")
    for name, r in runs.items():
        rps = a.rows / r["large_ms"] * 1000
        print(
            f"{name:12} {r['small_ms']:15.3f} {r['small_ms'] - d_small:12.3f} {rps:13,.0f} "
            f"{d_large / r['large_ms']:10.2f} {r['burst_max_ms']:15.1f}"
        )
    if "baseline" in runs:
        s, b = runs["tdw serve"], runs["baseline"]
        print(
            f"tdw serve vs baseline: small query {b['small_ms'] / s['small_ms']:.1f}x faster, "
            f"large result {b['large_ms'] / s['large_ms']:.1f}x the rows/s"
        )
    print("targets: overhead <= 2 ms; large rows/s >= 5x the baseline; no connect stall (burst max << 1000 ms)")


if __name__ == "__main__":
    main()
