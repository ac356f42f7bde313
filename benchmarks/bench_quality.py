"""Cost of the data-quality gate (``warehouse.quality.validate_job``) per job, on real probe
output: the toy suite's checkpoints through every probe, as ``tdw demo`` ingests them.

Prints the one-time Great Expectations import and set-up, then per probe the median gate
time per job (jobs after the first: at least 5 each) against the same-run baseline, the
median time of the probe's own compute for those jobs (the gate should never cost more than
the probe it guards), the median over all jobs in the demo's mix (the tensor-only probes on
every checkpoint, the model-running ones on every sixth; goal: under 20 ms), and the load
average.

    python benchmarks/bench_quality.py [--toy-root data/toy-suite] [--checkpoints 12]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toy-root", type=Path, default=Path("data/toy-suite"))
    ap.add_argument("--model", default="toy/neox-2l")
    ap.add_argument("--checkpoints", type=int, default=12)
    args = ap.parse_args()
    if not (args.toy_root / args.model.split("/")[1] / "suite.json").exists():
        from ingest.toy.train import train_suite
        train_suite(args.toy_root)

    from ingest.probes import get_probes
    from ingest.sources import open_source
    from warehouse.quality import validate_job

    src = open_source(args.model, toy_root=args.toy_root)
    steps = src.steps()[:args.checkpoints]
    probes = get_probes(None)
    t0 = time.perf_counter()
    import warehouse.quality_gx as qgx
    qgx.gate()
    first = time.perf_counter() - t0
    print(f"Great Expectations import + context: {first:.2f} s (once per process)")
    per_probe: dict[str, list[float]] = {}
    compute: dict[str, list[float]] = {}
    for probe in probes:
        params = probe.params()
        ctx = probe.context(src, steps, params)
        for step in steps:
            t = time.perf_counter()
            frames = probe.run(src.checkpoint(step), params, ctx)
            compute.setdefault(probe.name, []).append(time.perf_counter() - t)
            t = time.perf_counter()
            validate_job(probe, frames, {"probe": probe.name, "step": step})
            per_probe.setdefault(probe.name, []).append(time.perf_counter() - t)
    mix = []
    for probe in probes:
        ts = per_probe[probe.name]
        n_exp = sum(len(v) for v in probe.expectations({}, None).values())
        gate, run = statistics.median(ts[1:]), statistics.median(compute[probe.name][1:])
        print(f"{probe.name:13s} first {1000 * ts[0]:7.1f} ms, then median {1000 * gate:6.1f} ms over {len(ts) - 1} jobs "
              f"= {gate / run:5.2f}x the probe's own {1000 * run:7.1f} ms "
              f"({len(probe.tables)} tables, {n_exp} declared expectations)")
        mix += ts[1:] if not probe.runs_model else ts[1::6]
    print(f"median over the demo's job mix: {1000 * statistics.median(mix):.1f} ms (goal < 20 ms)")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
