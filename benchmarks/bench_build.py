"""Build cost versus warehouse size: full builds, the build after one more checkpoint, publishing.

Synthetic raw rows of the weights probe shaped like Pythia-14M (the unembedding and the
embedding, 50304 x 128 each: a 2^18-value MSD sample, ~20k histogram codes and one stats row
per tensor and checkpoint; a manifest row per job), for 1..M models x T checkpoints (the
Pythia schedule: 0, 1, 2, 4 ... 512, then every 1000). The numbers are random, only shapes
and row counts matter. For each size:

- full build: `tdw build --full-refresh` (dbt build of the whole project with its tests,
  then the snapshot publish), timed, and the dbt time of int_msd alone (run_results.json);
- one more checkpoint: a checkpoint is added to the first model (raw rows and a manifest
  row), then `tdw build` (incremental) is timed — median of --repeats;
- publish: `warehouse.snapshot.publish` alone and the snapshot's size.

dbt's per-model times (run_results.json) of the largest case's incremental build are
printed last. The machine is shared: medians and the 1-minute load average are printed.

    python benchmarks/bench_build.py [--models 1,2,4] [--steps 154] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse import db  # noqa: E402

STEPS = [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))  # 154 checkpoints
TENSORS = ("lm_head.weight", "gpt_neox.embed_in.weight")
N_TOTAL = 50304 * 128
SAMPLE = 1 << 18
CODES = 20000
ROWS = json.dumps({"weight_stats": len(TENSORS), "weight_hist": len(TENSORS) * CODES, "weight_sample": len(TENSORS)})


OLD_MSD = """
with v as (select model_id, tensor_name, step, unnest(sampled_values) as w, unnest(range(len(sampled_values))) as k
           from staging.stg_weight_sample),
c as (select model_id, tensor_name, step, sum(w) over (partition by model_id, tensor_name, k order by step
      rows between unbounded preceding and current row) as s from v)
select model_id, tensor_name, step, var_samp(s) as msd from c group by all"""


def add_checkpoints(con, models: list[str], steps: list[int]) -> None:
    """Raw weights rows and successful manifest rows for every (model, step)."""
    con.execute(
        "create or replace temp table ck as select * from (select unnest(?) as model_id) m, "
        "(select unnest(?) as step) s",
        [models, steps],
    )
    con.execute("create or replace temp table tn as select unnest(?) as tensor_name", [list(TENSORS)])
    con.execute(f"""insert into raw.weight_sample (model_id, step, tensor_name, n_total, sample_seed, exact, vals)
        select model_id, step, tensor_name, {N_TOTAL}, 0, false,
               (select list((random() - 0.5)::float * 0.04) from range({SAMPLE}) where ck.step >= 0)
        from ck, tn""")
    con.execute(f"""insert into raw.weight_hist (model_id, step, tensor_name, code, count)
        select model_id, step, tensor_name,   -- sign, exponent 110..114, mantissa: |w| in 2^-17..2^-12
               ((c.i % 2) << 19) | ((110 + (c.i // 2) // 2048) << 11) | ((c.i // 2) % 2048), 1 + (c.i % 50)
        from ck, tn, range({CODES}) c(i)""")
    con.execute(f"""insert into raw.weight_stats (model_id, step, tensor_name, shape, n, n_nonfinite, mean, std,
            skewness, kurtosis, min, max, l2_norm, frac_near_zero, near_zero_eps)
        select model_id, step, tensor_name, '[50304, 128]', {N_TOTAL}, 0, 0.0, 0.02, 0.01 * random(), 0.1,
               -0.00025 - 0.00001 * random(), 0.00025 + 0.00001 * random(), 50.0, 0.05, 0.001
        from ck, tn""")
    rows = [(str(uuid.uuid4()), m, s) for m in models for s in steps]
    con.executemany(
        """insert into raw.ingest_runs (run_id, model_id, step, revision, source, probe, probe_version,
            params, params_hash, content_hash, code_version, status, started_at, ended_at, rows)
        values (?, ?, ?, 'step' || ?, 'hub', 'weights', '2', '{}', 'h', md5(? || ?), 'bench', 'success',
                now(), now(), ?)""",
        [(r, m, s, s, m, s, ROWS) for r, m, s in rows],
    )


def make(path: Path, n_models: int, steps: list[int]) -> list[str]:
    from ingest.probes import get_probes

    models = [f"synthetic/pythia-14m-{i}" for i in range(n_models)]
    con = db.connect(path)
    db.ensure_tables(con, [t for p in get_probes("all") for t in p.tables])
    add_checkpoints(con, models, steps)
    con.close()
    return models


def cpu() -> float:
    """CPU seconds of this process and its finished children (dbt runs in a child)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


CPU: list[float] = []  # CPU seconds of each timed build, in order


def timed_build(wh: Path, full_refresh: bool = False) -> tuple[float, dict[str, float]]:
    from warehouse.dbt import build

    t, c = time.perf_counter(), cpu()
    build(wh, full_refresh=full_refresh)
    seconds = time.perf_counter() - t
    CPU.append(cpu() - c)
    results = json.loads((wh.parent / ".tdw-dbt" / "target" / "run_results.json").read_text())
    per_node = {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in results["results"]
        if r["unique_id"].startswith("model.")
    }
    return seconds, per_node


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="1,2,4", help="model counts to measure (14M-shaped, --steps each)")
    ap.add_argument("--steps", default=str(len(STEPS)), help="checkpoints per model (<= 154), one or more")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--baseline-upto",
        type=int,
        default=40,
        help="time the old from-scratch MSD window up to this many checkpoints x models",
    )
    args = ap.parse_args()
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    tmp = Path(tempfile.mkdtemp(prefix="bench_build_"))
    os.environ["TDW_DATA_DIR"] = str(tmp)
    rows = []
    last_nodes: dict[str, float] = {}
    sizes = [(int(n), int(t)) for n in args.models.split(",") for t in args.steps.split(",")]
    for n, t in sizes:
        steps = STEPS[:t]
        extra = steps[-1] + 1000
        wh = tmp / f"m{n}-{t}" / "warehouse.duckdb"
        wh.parent.mkdir()
        models = make(wh, n, steps)
        full, nodes = timed_build(wh, full_refresh=True)
        full_cpu = CPU[-1]
        slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(nodes.items(), key=lambda kv: -kv[1])[:8])
        print(f"  full build: {full:.1f} s wall, {full_cpu:.1f} s CPU; slowest models (s): {slow}", flush=True)
        old = float("nan")
        if n * t <= args.baseline_upto:
            con = db.connect(wh)
            t0 = time.perf_counter()
            con.execute(f"create temp table old_msd as {OLD_MSD}")  # the from-scratch window, as before
            old = time.perf_counter() - t0
            con.close()
        one = []
        for k in range(args.repeats):
            con = db.connect(wh)
            add_checkpoints(con, models[:1], [extra + 1000 * k])
            con.close()
            seconds, last_nodes = timed_build(wh)
            one.append(seconds)
            print(
                f"  +1 checkpoint build: {seconds:.1f} s wall, {CPU[-1]:.1f} s CPU, {len(last_nodes)} models run",
                flush=True,
            )
        from warehouse.snapshot import publish, snapshot_path

        pub = [publish(wh).seconds for _ in range(args.repeats)]
        rows.append(
            (
                n,
                n * len(steps),
                wh.stat().st_size / 2**20,
                full,
                nodes.get("int_msd", float("nan")),
                old,
                statistics.median(one),
                last_nodes.get("int_msd", float("nan")),
                sum(last_nodes.values()),
                statistics.median(pub),
                snapshot_path(wh).stat().st_size / 2**20,
            )
        )
        print(f"{n} model(s) x {t} checkpoints: {rows[-1][3:]} (load average {os.getloadavg()[0]:.2f})", flush=True)
        shutil.rmtree(wh.parent / ".tdw-dbt" / "logs", ignore_errors=True)
    print(
        f"\nPythia-14M-shaped weights rows; medians of {args.repeats} for the "
        f"one-more-checkpoint build and publish; load average now {os.getloadavg()[0]:.2f} (2 cores)"
    )
    print(
        f"{'models':>6} {'ckpts':>6} {'file MiB':>9} {'full s':>8} {'int_msd':>8} {'old msd':>8} {'+1 ckpt s':>10} "
        f"{'int_msd':>8} {'models s':>9} {'publish s':>10} {'snap MiB':>9}"
    )
    for r in rows:
        print(
            f"{r[0]:>6} {r[1]:>6} {r[2]:>9.0f} {r[3]:>8.1f} {r[4]:>8.1f} {r[5]:>8.1f} {r[6]:>10.1f} {r[7]:>8.2f} "
            f"{r[8]:>9.1f} {r[9]:>10.2f} {r[10]:>9.1f}"
        )
    base = rows[0]
    for r in rows[1:]:
        print(
            f"x{r[1] / base[1]:.1f} checkpoints: full build x{r[3] / base[3]:.2f}, int_msd x{r[4] / base[4]:.2f} "
            f"(old x{r[5] / base[5]:.2f}), +1 checkpoint build x{r[6] / base[6]:.2f} (int_msd x{r[7] / base[7]:.2f}), "
            f"publish x{r[9] / base[9]:.2f}, snapshot x{r[10] / base[10]:.2f}"
        )
    print(f"\ndbt per-model times of the last incremental build ({rows[-1][0]} models), slowest first:")
    for name, s in sorted(last_nodes.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {s:7.2f} s  {name}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
