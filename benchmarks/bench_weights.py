"""The weights job against one read-and-reduce pass over the same tensors (issue 19).

Pythia-14M-shaped checkpoints (GPT-NeoX, 6 layers, d_model 128, vocab 50304, random
weights, ``save_pretrained``) are ingested with ``tdw``'s local pipeline, probe
``weights`` with its default tensors (the unembedding and the embedding, 50304 x 128
float32 each: 25.7 MB). A job is timed as ``raw.ingest_runs`` times it (``started_at`` to
``ended_at``: open and hash the checkpoint, read, statistics, quality gate, load); the first
job is left out (it imports Great Expectations and draws the MSD index sample once per model).

The baseline, measured in the same process and run, on the same files, twice after each
job (so both see the same load): ``safe_open`` + ``get_tensor`` + ``torch.sum`` over the
same two tensors. ``raw.ingest_runs`` ends a job when its rows are inserted, before the
commit. Also timed separately, to say where
a job's time goes: the content hash, the probe's compute, the gate and the load.

Peak memory: the probe on one checkpoint in a fresh process, its peak resident set above the
process's start (the memory-mapped tensor pages count), as a multiple of the largest tensor.
Prints medians of at least 5 runs, the ratio (goal: a job within 20x of the baseline) and
the load average.

    python benchmarks/bench_weights.py [--checkpoints 7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import load_average, median_ms, write_14m

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

TENSORS = ("embed_out.weight", "gpt_neox.embed_in.weight")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_child(root: str) -> None:
    """The probe on one checkpoint; prints its peak resident set above the start (polled
    every millisecond; the mapped tensor pages count) and the largest tensor's size."""
    import threading

    from ingest.probes.weights import WeightsProbe
    from ingest.sources import LocalSource

    probe = WeightsProbe()
    params = probe.params()
    ckpt = LocalSource(Path(root), "bench/weights").checkpoint(1000)
    largest = max(4 * math.prod(ckpt.tensors().shape(n)) for n in ("lm_head.weight", "gpt_neox.embed_in.weight"))
    ckpt._tensors = None
    probe.run(LocalSource(Path(root), "bench/weights").checkpoint(0), params, {})  # imports, allocator warm
    base, peak, done = rss(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    t = threading.Thread(target=poll)
    t.start()
    probe.run(ckpt, params, {})
    done.set()
    t.join()
    print(json.dumps({"peak": max(peak[0], rss()) - base, "largest": largest}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=7)
    a = ap.parse_args()
    import duckdb
    import torch
    from safetensors import safe_open

    from ingest.probes.weights import WeightsProbe
    from ingest.sources import LocalSource
    from warehouse import db
    from warehouse.pipeline import ingest
    from warehouse.quality import validate_job

    n_ckpt = max(6, a.checkpoints)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p14m"
        write_14m(root, n_ckpt)
        wh = Path(tmp) / "w.duckdb"
        files = [root / f"step{i * 1000}" / "model.safetensors" for i in range(n_ckpt)]
        pick = iter(files * 4)

        def read_reduce():
            with safe_open(str(next(pick)), framework="pt") as f:
                return [float(torch.sum(f.get_tensor(n))) for n in TENSORS]

        rr = []
        for i in range(n_ckpt):  # a job, then the baseline: same load for both
            ingest(str(root), revisions=f"step{i * 1000}", probes="weights", warehouse=wh, progress=False)
            for _ in range(2):
                t = time.perf_counter()
                read_reduce()
                rr.append(time.perf_counter() - t)
        base = 1000 * statistics.median(rr[2:])
        con = duckdb.connect(str(wh), read_only=True)
        jobs = [
            r[0]
            for r in con.execute(
                "SELECT epoch(ended_at) - epoch(started_at) FROM raw.ingest_runs WHERE status='success' "
                "ORDER BY started_at"
            ).fetchall()
        ]
        con.close()
        job = 1000 * statistics.median(jobs[1:])

        src = LocalSource(root, "bench/weights")
        probe = WeightsProbe()
        params = probe.params()
        ctx: dict = {}
        probe.run(src.checkpoint(0), params, ctx)
        steps = iter([i * 1000 for i in range(n_ckpt)] * 4)
        hash_ms = median_ms(lambda: src.checkpoint(next(steps)).content_hash(), 5)
        run_ms = median_ms(lambda: probe.run(src.checkpoint(next(steps)), params, ctx), 5)
        frames = probe.run(src.checkpoint(1000), params, ctx)
        validate_job(probe, frames)
        gate_ms = median_ms(lambda: validate_job(probe, frames), 5)
        lcon = duckdb.connect(str(Path(tmp) / "load.duckdb"))
        db.ensure_tables(lcon, probe.tables)
        k = iter(range(100))

        def load():
            step = next(k)
            f = {t: fr.assign(step=step) for t, fr in frames.items()}
            db.load_job(
                lcon,
                probe.tables,
                f,
                {"model_id": "bench/weights", "step": step, "probe": "weights", "params": params},
                probe=probe,
                expectations={},
            )

        load_ms = median_ms(load, 5)
        lcon.close()
        proc = subprocess.run(
            [sys.executable, __file__, "--peak", str(root)], capture_output=True, text=True, check=True
        )
        mem = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = 50304 * 128 * 4 / 1e6
    print(
        f"Pythia-14M shape, default tensors (2 x 50304 x 128 float32 = {2 * mb:.1f} MB), "
        f"{n_ckpt} checkpoints; medians of >= 5 runs"
    )
    print(f"read + reduce (safe_open, get_tensor, torch.sum)  : {base:7.1f} ms")
    print(
        f"weights job (raw.ingest_runs, jobs 2..{len(jobs)})       : {job:7.1f} ms  "
        f"= {job / base:.1f}x the read+reduce pass (goal <= 20x)"
    )
    print(
        f"  its parts, timed apart: content hash {hash_ms:.1f} ms, probe {run_ms:.1f} ms, "
        f"gate {gate_ms:.1f} ms, load with its commit {load_ms:.1f} ms"
    )
    peak = mem["peak"]
    print(
        f"probe peak memory above start: {peak / 1e6:.1f} MB = {peak / mem['largest']:.2f}x the largest "
        f"tensor (goal <= 2x)"
    )
    print(load_average())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--peak":
        peak_child(sys.argv[2])
    else:
        main()
