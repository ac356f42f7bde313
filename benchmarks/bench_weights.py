"""Weight probe speed and memory on a Pythia-14M-shaped unembedding (50304 x 128, float32).

Three ways of getting the probe's statistics from a safetensors checkpoint, each run in a
fresh subprocess so peak memory is its own:
  read      merely reading the tensor (safe_open), the I/O floor;
  naive     a straightforward numpy version: float64 copy, np.histogram, np.quantile, moments;
  probe     tdw's weights probe (WeightsProbe.run on the checkpoint: statistics, fine
            histogram, MSD sample, frames), with the per-model context warm as in an
            ingest of many checkpoints (the index sample is drawn once per model).
Prints the median MB/s of each over repeats, the probe's speed-up over naive, and each
variant's peak memory above its starting point as a multiple of the tensor's size.
Goals (issue 2): probe >= 5x naive; probe peak <= 2x the tensor.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = (50304, 128)
REPEATS = 5


def child(variant: str, folder: str) -> None:
    import numpy as np
    from safetensors import safe_open
    from scipy import stats as st

    from ingest.probes.weights import WeightsProbe
    from ingest.sources import LocalSource

    path = Path(folder) / "step0" / "model.safetensors"
    probe = WeightsProbe()
    params = probe.params(tensors="unembed")
    ckpt = LocalSource(Path(folder), "bench/weights").checkpoint(0)
    ckpt.content_hash()

    def read():
        with safe_open(str(path), framework="pt") as f:
            x = f.get_tensor("embed_out.weight").numpy()
        np.add.reduce(x)  # touch every page: the tensor is memory-mapped lazily
        return x

    def naive():
        x = read().astype(np.float64).ravel()
        np.histogram(x, bins=100)
        np.quantile(x, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
        return x.mean(), x.std(), st.skew(x), st.kurtosis(x), np.linalg.norm(x), x.min(), x.max()

    context: dict = {}  # per model, as in `tdw ingest`: the MSD index sample is drawn once per tensor
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "probe":
        probe.run(ckpt, params, context)  # warm-up (counted in peak memory, not in time)

    def run_probe():
        ckpt._tensors = None  # re-open the file every time, as a fresh job does
        return probe.run(ckpt, params, context)

    fn = {"read": read, "naive": naive, "probe": run_probe}[variant]
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"times": times, "peak_kb": peak - base}))


def main() -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "step0"
        folder.mkdir()
        w = torch.from_numpy(np.random.default_rng(0).normal(0, 0.02, SHAPE).astype(np.float32))
        save_file({"embed_out.weight": w}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text("{}")
        mb = w.numel() * 4 / 2**20
        out = {}
        for variant in ("read", "naive", "probe"):
            proc = subprocess.run([sys.executable, __file__, "--child", variant, tmp],
                                  capture_output=True, text=True, check=True)
            out[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"tensor {SHAPE[0]} x {SHAPE[1]} float32 = {mb:.1f} MB, median of {REPEATS} runs each")
    print(f"{'variant':8} {'median s':>9} {'MB/s':>8} {'peak MB':>8} {'peak/tensor':>11}")
    for variant, r in out.items():
        med = statistics.median(r["times"])
        peak = r["peak_kb"] / 1024
        print(f"{variant:8} {med:9.3f} {mb / med:8.1f} {peak:8.1f} {peak / mb:11.2f}")
    speedup = statistics.median(out["naive"]["times"]) / statistics.median(out["probe"]["times"])
    print(f"probe speed-up over naive: {speedup:.1f}x (goal >= 5x); "
          f"probe peak {out['probe']['peak_kb'] / 1024 / mb:.2f}x tensor (goal <= 2x)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
