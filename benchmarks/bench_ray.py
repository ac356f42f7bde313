"""Ingest on the local executor against Ray with 1 and 2 workers, and throughput per probe.

1. Executors: the toy model neox-2l (a short training run, 13 checkpoints) and Pythia-14M-
   shaped checkpoints, every probe, ingested into a fresh warehouse by the local executor,
   then by Ray started here with 1 and with 2 worker CPUs. Prints the median of ``--repeats``
   runs: the wall time (Ray's start-up included: it is what a user waits for), the jobs
   phase (first job's start to last job's end, from the manifest), and the speed-ups.
2. Throughput: seconds per checkpoint for each probe (median over the jobs of a local run,
   from the manifest's start and end times), on the toy model and on Pythia-14M-shaped
   checkpoints (GPT-NeoX, 6 layers, d_model 128, vocab 50304, random weights), and the cost
   of the whole Pythia suite extrapolated from the 14M figures (linear in parameters: a crude
   bound, stated as such in docs/scaling.md).

    python benchmarks/bench_ray.py [--repeats 1] [--checkpoints-14m 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import duckdb  # noqa: E402
from _common import write_14m  # noqa: E402

PYTHIA = {
    "14m": 14e6,
    "31m": 31e6,
    "70m": 70e6,
    "160m": 160e6,
    "410m": 410e6,
    "1b": 1.0e9,
    "1.4b": 1.4e9,
    "2.8b": 2.8e9,
    "6.9b": 6.9e9,
    "12b": 12e9,
}
P14M_PARAMS = 14_067_712  # parameters of _common.PYTHIA14M (embed + unembed + 6 layers)


def tdw(*args: str, env: dict | None = None) -> float:
    t = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "tdw"), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"tdw {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t


def per_probe_seconds(wh: Path) -> dict[str, float]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute(
            "SELECT probe, median(epoch(ended_at) - epoch(started_at)) FROM raw.ingest_runs "
            "WHERE status='success' GROUP BY probe ORDER BY probe"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def job_phase(wh: Path) -> float:
    """Seconds from the first job's start to the last job's end (without Ray's start-up)."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("SELECT epoch(max(ended_at)) - epoch(min(started_at)) FROM raw.ingest_runs").fetchone()[0]
    finally:
        con.close()


RUNS = {
    "local": ["--executor", "local"],
    "ray, 1 worker": ["--executor", "ray", "--ray-cpus", "1"],
    "ray, 2 workers": ["--executor", "ray", "--ray-cpus", "2"],
}


def plot(path: Path, toy: dict, p14: dict, speedups: dict) -> None:
    """Seconds per checkpoint per probe (log scale), and the executors' speed-ups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    probes = sorted(p14, key=p14.get)
    x = np.arange(len(probes))
    a.bar(x - 0.2, [toy.get(p, np.nan) for p in probes], 0.4, label="toy neox-2l")
    a.bar(x + 0.2, [p14[p] for p in probes], 0.4, label="Pythia-14M shape")
    a.set_xticks(x, probes)
    a.set_yscale("log")
    a.set_ylabel("seconds per checkpoint (one core)")
    a.set_title("probe cost per checkpoint")
    a.legend()
    labels = list(next(iter(speedups.values())))
    x = np.arange(len(labels))
    for i, (name, ups) in enumerate(speedups.items()):
        b.bar(x + (i - 0.5) * 0.4, [ups[k] for k in labels], 0.4, label=name)
    b.axhline(1.0, color="grey", lw=0.8)
    b.set_xticks(x, labels)
    b.set_ylabel("jobs-phase speed-up vs local")
    b.set_title("executors")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def compare(
    label: str, source: list[str], n_jobs: int, work: Path, repeats: int, env: dict, speedups: dict | None = None
) -> Path:
    """Ingest ``source`` with each executor; print medians and speed-ups; the local warehouse."""
    wall: dict[str, list[float]] = {k: [] for k in RUNS}
    jobs: dict[str, list[float]] = {k: [] for k in RUNS}
    for r in range(repeats):
        for name, extra in RUNS.items():
            run_dir = work / f"{label.split()[0].replace('/', '-')}-{r}-{name.replace(' ', '').replace(',', '')}"
            wh = run_dir / "w.duckdb"  # its own lake: run_dir/lake
            wall[name].append(tdw("ingest", *source, "--warehouse", str(wh), *extra, env=env))
            jobs[name].append(job_phase(wh))
    base, base_jobs = statistics.median(wall["local"]), statistics.median(jobs["local"])
    print(f"\n1. ingest of {label}: {n_jobs} jobs (median of {repeats})")
    print(f"   {'executor':16} {'wall s':>8} {'speed-up':>9} {'jobs phase s':>13} {'speed-up':>9} {'jobs/s':>7}")
    for name in RUNS:
        w, j = statistics.median(wall[name]), statistics.median(jobs[name])
        print(f"   {name:16} {w:8.1f} {base / w:8.2f}x {j:13.1f} {base_jobs / j:8.2f}x {n_jobs / j:7.2f}")
        if speedups is not None:
            speedups.setdefault(label.split(" (")[0], {})[name] = base_jobs / j
    lake = work / f"{label.split()[0].replace('/', '-')}-0-ray2workers" / "lake"
    size = sum(f.stat().st_size for f in lake.rglob("*") if f.is_file())
    print(
        f"   lake: {size / 2**20:.1f} MiB for {n_jobs} jobs ({size / 2**20 / n_jobs * 6:.2f} MiB a checkpoint, "
        "every probe)"
    )
    return work / f"{label.split()[0].replace('/', '-')}-0-local" / "w.duckdb"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--checkpoints-14m", type=int, default=6)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    env = dict(os.environ, TDW_DATA_DIR=str(work))
    os.environ["TDW_DATA_DIR"] = str(work)
    print(
        f"machine: {os.cpu_count()} CPUs; working in {work}; wall includes Ray's start-up, "
        "the jobs phase (first job start to last job end) does not"
    )
    t = tdw("toy-suite", "--out", str(work / "toy"), "--steps", "256", "--every", "32", env=env)
    print(f"toy suite (256 steps, 13 checkpoints a model) trained in {t:.0f} s")
    write_14m(work / "p14m", args.checkpoints_14m)

    speedups: dict[str, dict[str, float]] = {}
    toy_wh = compare(
        "toy/neox-2l (13 checkpoints x 6 probes)",
        ["toy/neox-2l", "--toy-root", str(work / "toy")],
        13 * 6,
        work,
        args.repeats,
        env,
        speedups,
    )
    p14_wh = compare(
        f"Pythia-14M shape ({args.checkpoints_14m} checkpoints x 6 probes)",
        [str(work / "p14m")],
        args.checkpoints_14m * 6,
        work,
        args.repeats,
        env,
        speedups,
    )
    toy, p14 = per_probe_seconds(toy_wh), per_probe_seconds(p14_wh)
    print(f"\n2. seconds per checkpoint per probe (median job, local executor, {os.cpu_count()} CPUs, float32)")
    print(f"   {'probe':14} {'toy neox-2l':>12} {'Pythia-14M shape':>17}")
    for probe in sorted(p14):
        print(f"   {probe:14} {toy.get(probe, float('nan')):12.2f} {p14[probe]:17.2f}")
    per_ckpt_14m = sum(p14.values())
    print(f"   {'all probes':14} {sum(toy.values()):12.2f} {per_ckpt_14m:17.2f}")

    plot(work / "bench_ray.png", toy, p14, speedups)
    print(f"\nfigure: {work / 'bench_ray.png'}")

    print(
        "\n3. whole Pythia suite, 154 checkpoints a model, every probe: CPU-core hours, "
        "extrapolated linearly in parameters from the 14M figures"
    )
    total = 0.0
    for name, n in PYTHIA.items():
        hours = per_ckpt_14m * (n / P14M_PARAMS) * 154 / 3600
        total += hours
        print(f"   pythia-{name:5} {hours:10.1f} h")
    print(f"   {'total':12} {total:10.1f} h  (= {total / 24:.0f} core-days; divide by the workers)")


if __name__ == "__main__":
    main()
