"""Scale of weights: a Pythia-160M-sized unembedding (50304 x 768) streamed over checkpoints.

Writes ``--checkpoints`` checkpoints of one random-walk tensor ``embed_out.weight``
(float16 by default, as Pythia stores them: 77 MB each; float32 doubles it) as
``<tmp>/step<N>/model.safetensors``, then runs, checkpoint by checkpoint in step order, what
ingest runs per checkpoint: the weights probe (``tensor_statistics``: moments, bfloat16
histogram, MSD sample) and the displacement probe (the same tensor read from the previous
checkpoint too). Prints throughput and peak memory: the peak resident set after two
checkpoints and after all of them (bounded memory: they stay equal; the files are written
by a child process so its memory does not count), and the largest
Python-heap peak per checkpoint (``tracemalloc``; numpy buffers are traced, torch's not).

Pythia has 154 checkpoints; the default is 16 to keep the run under three minutes on two
busy cores and the disk use near 1.2 GB (``--checkpoints 154`` runs the full count: ~12 GB at float16).

    python benchmarks/bench_weights_scale.py [--checkpoints 16] [--dtype float16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch
from safetensors.torch import save_file

from ingest.probes.displacement import DisplacementProbe
from ingest.probes.weights import WeightsProbe
from ingest.sources import LocalSource

SHAPE = (50304, 768)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_checkpoints(root: Path, n: int, dtype_name: str) -> list[int]:
    dtype = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(SHAPE, generator=g) * 0.02  # [vocab, d]
    steps = [0] + [2**i for i in range(10)] + list(range(1000, 1000 * n, 1000))
    steps = steps[:n]
    for s in steps:
        folder = root / f"step{s}"
        folder.mkdir(parents=True)
        save_file({"embed_out.weight": w.to(dtype).contiguous()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"vocab_size": SHAPE[0]}))
        w += torch.randn(SHAPE, generator=g) * 0.002  # a random walk
    del w
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=16)
    ap.add_argument("--dtype", choices=["float16", "float32", "bfloat16"], default="float16")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tdw-scale-", dir=a.dir))
    try:
        t = time.perf_counter()
        with mp.get_context("spawn").Pool(1) as pool:  # keeps the writer's memory out
            steps = pool.apply(write_checkpoints, (root, a.checkpoints, a.dtype))
        t_write = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in root.rglob("*.safetensors")) / 2**20
        rss_before = peak_rss_mb()
        src = LocalSource(root, "bench/pythia-160m-unembed")
        weights, disp = WeightsProbe(), DisplacementProbe()
        wp, dp = weights.params(tensors="unembed"), disp.params(tensors="unembed")
        w_ctx, d_ctx = weights.context(src, steps, wp), disp.context(src, steps, dp)
        per_ckpt, heap_peaks, rss_after = [], [], {}
        for i, s in enumerate(steps):
            ck = src.checkpoint(s)
            tracemalloc.start()
            t = time.perf_counter()
            w_out = weights.run(ck, wp, w_ctx)
            d_out = disp.run(ck, dp, d_ctx)
            per_ckpt.append(time.perf_counter() - t)
            heap_peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            del w_out, d_out
            rss_after[i + 1] = peak_rss_mb()
        n_vals = SHAPE[0] * SHAPE[1]
        med = statistics.median(per_ckpt[1:] or per_ckpt)
        tensor_mb = n_vals * 4 / 2**20
        print(
            f"tensor {SHAPE[0]} x {SHAPE[1]} ({n_vals / 1e6:.1f} M values, {tensor_mb:.0f} MB as float32), "
            f"{len(steps)} checkpoints as {a.dtype} ({size_mb:.0f} MB on disk, written in {t_write:.1f} s)"
        )
        print(
            f"per checkpoint (weights probe + displacement), median: {med:.2f} s "
            f"-> {n_vals / med / 1e6:.1f} M values/s, {1 / med * 3600:.0f} checkpoints/hour"
        )
        print(f"total probe time {sum(per_ckpt):.1f} s; extrapolated to 154 checkpoints: {med * 154 / 60:.1f} min")
        print(
            f"peak RSS (the checkpoints are written by a child process): "
            f"before ingest {rss_before:.0f} MB, after 2 checkpoints {rss_after[min(2, len(steps))]:.0f} MB, "
            f"after {len(steps)} {rss_after[len(steps)]:.0f} MB "
            f"(growth over the last {len(steps) - 2}: {rss_after[len(steps)] - rss_after[min(2, len(steps))]:.0f} MB)"
        )
        print(
            f"ingest working set: {rss_after[len(steps)] - rss_before:.0f} MB "
            f"= {(rss_after[len(steps)] - rss_before) / tensor_mb:.2f} x one float32 tensor "
            f"(two checkpoints' float32 copies, 2.00 x, plus the transient file-dtype read buffer "
            f"and chunk buffers)"
        )
        print(
            f"peak traced heap per checkpoint: max {max(heap_peaks):.0f} MB "
            f"= {max(heap_peaks) / tensor_mb:.2f} x one float32 tensor"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
