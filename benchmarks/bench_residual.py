"""Benchmark of the residual probe on a Pythia-70M-shaped model (seeded random weights).

GPT-NeoX, 6 layers, d_model 512, 8 heads, vocab 50304; 64 prompts x 128 tokens, batches
of 16. Measured in the same run:

- baselines: a plain forward of the base model (no lm_head: what the probe runs) and of
  the full causal LM (with the lm_head: what "a forward pass" usually means), on a model
  instance never wrapped by nnsight;
- capture + per-point metrics, at the last token and at all 8192 tokens: the nnsight
  capture of every sample point, the streaming ``StreamStats`` update and its finalize.
  Target: at most 1.5x the plain forward (checked against the stricter base-model one);
- separately, the perturbation runs (attractor grid, the probe's defaults), the whole
  ``ResidualProbe.run`` on one checkpoint (load, capture, metrics, PCA, pairs,
  perturbations, tables) and the once-per-model context (the shared PCA basis).

Times are medians over ``--repeats`` runs (default 2), the phases interleaved batch by
batch within a run so machine load hits them alike. Peak memory is measured in a fresh
child process per phase (torch tensors are invisible to tracemalloc): the peak
resident-set growth while the phase runs, sampled every 2 ms from /proc, above the
process's size once the model is loaded. The all-token capture is measured with 16 and 64
prompts: it stays flat because only one batch of activations is held at a time.

Run: ``python benchmarks/bench_residual.py [--repeats 2] [--prompts 64] [--threads 1]``
(about 3 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from _common import pythia14m_shaped

from ingest.probes.residual import ResidualProbe, attractor, pca
from ingest.probes.residual.metrics import StreamStats, layer_permutations, random_rotation
from ingest.probes.residual.sites import capture, layout_of, release_freed_memory, traced_base
from ingest.prompts import pad_right as padded
from ingest.sources import open_source

N_PROMPTS, SEQ, BATCH = 64, 128, 16
PHASES = (
    "forward (base model, no lm_head)",
    "forward (causal LM, with lm_head)",
    "capture + metrics, last token",
    "capture + metrics, all tokens",
)


class PeakRSS:
    """Peak resident-set size growth (bytes) while the block runs, sampled from /proc."""

    def __enter__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.growth = self.peak - self.start


def build(root: Path) -> Path:
    """A Pythia-70M-shaped checkpoint (d_model 512, 8 heads) with seeded random weights."""
    model = pythia14m_shaped(
        0, hidden_size=512, num_attention_heads=8, intermediate_size=2048, bos_token_id=0, eos_token_id=0
    )
    model.save_pretrained(root / "pythia70m-shape" / "step0")
    return root / "pythia70m-shape"


class Bench:
    """The model (twice: plain and nnsight-wrapped), the prompts, and one function per phase."""

    def __init__(self, model_dir: Path, n_prompts: int):
        self.src = open_source(str(model_dir))
        self.ck = self.src.checkpoint(0)
        self.layout = layout_of(self.ck.config())
        self.plain = self.ck.load_model()  # never wrapped by nnsight
        self.model = self.ck.load_model()
        self.traced = traced_base(self.model)
        rng = np.random.default_rng(0)
        self.prompts = list(rng.integers(0, 50304, size=(n_prompts, SEQ)))
        self.batches = [padded(self.prompts[s : s + BATCH]) for s in range(0, n_prompts, BATCH)]
        self.rot = random_rotation(self.layout.d_model, 0)
        self.perms = layer_permutations(self.layout.n_points, 1, 0)

    def forward_base(self, which=None):
        with torch.no_grad():
            for ids, _ in which or self.batches:
                self.plain.base_model(ids)

    def forward_full(self, which=None):
        with torch.no_grad():
            for ids, _ in which or self.batches:
                self.plain(ids)

    def capture_metrics(self, all_tokens: bool, which=None, stats=None, finalize=True):
        lay = self.layout
        stats = stats or StreamStats(lay.n_points, lay.d_model, self.rot, self.perms, 0.5)
        for ids, lengths in which or self.batches:
            h = capture(self.traced, lay, ids, lengths, all_tokens)
            if all_tokens:
                h = h.reshape(-1, lay.n_points, lay.d_model)  # [samples, points, d]
            stats.update(h)
            del h
            release_freed_memory()  # as the probe does after each batch
        if finalize:
            stats.finalize()
        return stats

    def phase(self, name: str):
        return dict(
            zip(
                PHASES,
                (
                    self.forward_base,
                    self.forward_full,
                    lambda: self.capture_metrics(False),
                    lambda: self.capture_metrics(True),
                ),
            )
        )[name]


def measure_memory(model_dir: str, phase: str, n_prompts: int, threads: int) -> int:
    """Peak RSS growth of one phase in a fresh child process (bytes)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", json.dumps([model_dir, phase, n_prompts, threads])],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def memory_child(spec: str) -> None:
    model_dir, phase, n_prompts, threads = json.loads(spec)
    torch.set_num_threads(threads)
    bench = Bench(Path(model_dir), n_prompts)
    with PeakRSS() as m:
        bench.phase(phase)()
    print(m.growth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=N_PROMPTS, help="fewer for a smoke run")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable ratios on a shared 2-core machine)"
    )
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp))
        b = Bench(model_dir, args.prompts)
        lay = b.layout
        b.forward_base(b.batches[:1])  # warm-up (allocator, kernels)
        b.capture_metrics(False, b.batches[:1])
        times = {k: [] for k in PHASES}
        for _ in range(args.repeats):
            acc = dict.fromkeys(PHASES, 0.0)
            streams = {True: None, False: None}
            for i in range(len(b.batches)):  # interleaved batch by batch
                one, last = b.batches[i : i + 1], i == len(b.batches) - 1

                def metrics(all_tokens: bool, one=one, last=last):
                    streams[all_tokens] = b.capture_metrics(all_tokens, one, streams[all_tokens], finalize=last)  # noqa: F821

                for k, fn in zip(
                    PHASES,
                    (
                        lambda: b.forward_base(one),  # noqa: F821
                        lambda: b.forward_full(one),  # noqa: F821
                        lambda: metrics(False),
                        lambda: metrics(True),
                    ),
                ):
                    t = time.perf_counter()
                    fn()
                    acc[k] += time.perf_counter() - t
            for k in PHASES:
                times[k].append(acc[k])
        med = {k: statistics.median(v) for k, v in times.items()}

        # perturbation runs alone: the defaults (2 block inputs, 4 prompts, 3 x 3 grid)
        states = np.concatenate([capture(b.traced, lay, ids, ln).numpy() for ids, ln in b.batches])
        basis = pca.fit(states)
        chosen = np.arange(4)

        def perturb():
            baseline = attractor.Baseline.of(b.model.base_model, [b.prompts[i] for i in chosen], states[chosen])  # noqa: F821
            for at in lay.block_inputs()[:2]:
                grid = attractor.plane_grid(basis.project(states[:, at])[:, :2], 3)
                attractor.perturbation_runs(b.traced, lay, baseline, basis, at, grid)  # noqa: F821

        pert = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            perturb()
            pert.append(time.perf_counter() - t)

        # the whole probe on one checkpoint (context = the shared basis, once per model)
        probe = ResidualProbe()
        params = probe.params(prompts="toy", n_prompts=args.prompts, prompt_len=SEQ)
        t = time.perf_counter()
        ctx = probe.context(b.src, [0], params)
        t_ctx = time.perf_counter() - t
        t = time.perf_counter()
        probe.run(b.ck, params, ctx)
        t_run = time.perf_counter() - t
        del b

        mem = {k: measure_memory(str(model_dir), k, BATCH, args.threads) for k in PHASES}
        mem_all_4 = measure_memory(str(model_dir), PHASES[3], 4 * BATCH, args.threads)

    mb = 1 / 2**20
    base, full = med[PHASES[0]], med[PHASES[1]]
    print(
        f"residual probe benchmark: Pythia-70M shape (6 x 512, vocab 50304), {args.prompts} "
        f"prompts x {SEQ} tokens, batch {BATCH}, torch threads {args.threads}, "
        f"median of {args.repeats}"
    )
    print(f"{'phase':44s} {'seconds':>8s} {'x base fwd':>10s} {'x full fwd':>10s} {'peak RSS +MB (1 batch)':>23s}")
    for k in PHASES:
        print(f"{k:44s} {med[k]:8.2f} {med[k] / base:10.2f} {med[k] / full:10.2f} {mem[k] * mb:23.1f}")
    p = statistics.median(pert)
    print(f"{'perturbation runs (2 layers x 4 prompts x 9)':44s} {p:8.2f} {p / base:10.2f} {p / full:10.2f}")
    print(f"{'probe.run per checkpoint (defaults)':44s} {t_run:8.2f} {t_run / base:10.2f} {t_run / full:10.2f}")
    print(f"{'context: shared basis, once per model':44s} {t_ctx:8.2f}")
    print(
        f"all-token capture + metrics, peak RSS growth: {mem[PHASES[3]] * mb:.1f} MB with "
        f"{BATCH} prompts, {mem_all_4 * mb:.1f} MB with {4 * BATCH} (one batch of activations "
        f"at every point: {BATCH * SEQ * lay.n_points * lay.d_model * 4 * mb:.1f} MB)"
    )
    for mode in ("last token", "all tokens"):
        r = med[f"capture + metrics, {mode}"] / base
        print(
            f"target capture + metrics <= 1.5x plain forward ({mode}): {r:.2f}x the base-model "
            f"forward, {med[f'capture + metrics, {mode}'] / full:.2f}x the causal-LM forward "
            f"-> {'PASS' if r <= 1.5 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
