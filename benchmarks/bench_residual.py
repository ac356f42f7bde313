"""Benchmark of the residual probe on a Pythia-70M-shaped model (seeded random weights).

GPT-NeoX, 6 layers, d_model 512, 8 heads, vocab 50304; 64 prompts x 128 tokens, batches
of 16. Every figure is the median over ``--repeats`` runs, phases interleaved within each
repeat so machine load hits them alike. Measured in the same run:

- baselines: a plain forward of the base model (no lm_head, what the probe runs) and of
  the full causal LM (with the lm_head, what "a forward pass" usually means), on a model
  instance never wrapped by nnsight;
- capture + per-point metrics (last token, and all 8192 tokens): nnsight capture of every
  sample point and the streaming ``StreamStats`` update and finalize; the target is at
  most 1.5x the plain forward;
- the perturbation runs (attractor grid) and the whole ``ResidualProbe.run`` for one
  checkpoint (load, capture, metrics, PCA, pairs, perturbations, tables), separately;
- peak memory: the peak resident-set growth above the phase's start, sampled every 2 ms
  from /proc (torch tensors are invisible to tracemalloc), and tracemalloc's peak of
  Python/numpy allocations during the all-token capture; and the all-token capture's peak
  at 16 vs 64 prompts, which stays flat because only one batch is held at a time.
  (A forward's own peak is mostly the allocator's: the causal LM's includes the
  [batch, pos, 50304] logits the probe never computes.)

Run: ``python benchmarks/bench_residual.py [--repeats 3]`` (about 2-3 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from ingest.probes.residual import ResidualProbe, attractor, pca
from ingest.probes.residual.metrics import StreamStats, layer_permutations, random_rotation
from ingest.probes.residual.sites import capture, layout_of, padded, prefix_caches, traced_base
from ingest.sources import open_source

N_PROMPTS, SEQ, BATCH = 64, 128, 16


class PeakRSS:
    """Peak resident-set size growth (bytes) while the block runs, sampled from /proc."""

    def __enter__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _rss(self) -> int:
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
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=512, num_hidden_layers=6,
                        num_attention_heads=8, intermediate_size=2048, max_position_embeddings=2048,
                        rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False,
                        bos_token_id=0, eos_token_id=0)
    GPTNeoXForCausalLM(cfg).save_pretrained(root / "pythia70m-shape" / "step0")
    return root / "pythia70m-shape"


def timed(fn) -> tuple[float, int]:
    with PeakRSS() as m:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
    return dt, m.growth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=N_PROMPTS, help="fewer for a smoke run")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = open_source(str(build(Path(tmp))))
        ck = src.checkpoint(0)
        layout = layout_of(ck.config())
        plain = ck.load_model()                      # never wrapped by nnsight
        model = ck.load_model()
        traced = traced_base(model)
        rng = np.random.default_rng(0)
        n_prompts = args.prompts
        prompts = list(rng.integers(0, 50304, size=(n_prompts, SEQ)))
        batches = [padded(prompts[s:s + BATCH]) for s in range(0, n_prompts, BATCH)]
        rot = random_rotation(layout.d_model, 0)
        perms = layer_permutations(layout.n_points, 1, 0)

        def forward_base():
            with torch.no_grad():
                for ids, _ in batches:
                    plain.base_model(ids)

        def forward_full():
            with torch.no_grad():
                for ids, _ in batches:
                    plain(ids)

        def capture_metrics(all_tokens: bool, which=batches):
            stats = StreamStats(layout.n_points, layout.d_model, rot, perms, 0.5)
            for ids, lengths in which:
                h = capture(traced, layout, ids, lengths, all_tokens)
                if all_tokens:
                    h = h.reshape(-1, layout.n_points, layout.d_model)
                stats.update(h)
                del h
            stats.finalize()

        forward_base()                               # warm-up (allocator, kernels)
        capture_metrics(False)
        phases = {"forward (base model, no lm_head)": forward_base,
                  "forward (causal LM, with lm_head)": forward_full,
                  "capture + metrics, last token": lambda: capture_metrics(False),
                  "capture + metrics, all tokens": lambda: capture_metrics(True)}
        times = {k: [] for k in phases}
        mems = {k: [] for k in phases}
        for _ in range(args.repeats):
            for k, fn in phases.items():
                dt, mem = timed(fn)
                times[k].append(dt)
                mems[k].append(mem)
        med = {k: statistics.median(v) for k, v in times.items()}

        # perturbation runs alone: the defaults (2 block inputs, 4 prompts, 3 x 3 grid)
        states = np.concatenate([capture(traced, layout, ids, ln).numpy() for ids, ln in batches])
        basis = pca.fit(states)
        chosen = np.arange(4)

        def perturb():
            caches = prefix_caches(model.base_model, [prompts[i] for i in chosen])
            for at in layout.block_inputs()[:2]:
                grid = attractor.plane_grid(basis.project(states[:, at])[:, :2], 3)
                attractor.perturbation_runs(traced, model.base_model, layout,
                                            [prompts[i] for i in chosen], states[chosen], basis,
                                            at, grid, caches)
        pert = [timed(perturb)[0] for _ in range(args.repeats)]

        # the whole probe on one checkpoint (context = the shared basis, once per model)
        probe = ResidualProbe()
        params = probe.params(prompts="toy", n_prompts=n_prompts, prompt_len=SEQ)
        t = time.perf_counter()
        ctx = probe.context(src, [0], params)
        t_ctx = time.perf_counter() - t
        run_last = timed(lambda: probe.run(ck, params, ctx))

        # memory: the all-token capture holds one batch, whatever the number of prompts
        tracemalloc.start()
        few = timed(lambda: capture_metrics(True, batches[:1]))[1]
        py_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        many = statistics.median(mems["capture + metrics, all tokens"])

    mb = 1 / 2 ** 20
    base, full = med["forward (base model, no lm_head)"], med["forward (causal LM, with lm_head)"]
    print(f"residual probe benchmark: Pythia-70M shape (6 x 512, vocab 50304), {n_prompts} prompts "
          f"x {SEQ} tokens, batch {BATCH}, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")
    print(f"{'phase':42s} {'seconds':>8s} {'x base fwd':>10s} {'x full fwd':>10s} {'peak RSS +MB':>12s}")
    for k in phases:
        print(f"{k:42s} {med[k]:8.2f} {med[k] / base:10.2f} {med[k] / full:10.2f} "
              f"{statistics.median(mems[k]) * mb:12.1f}")
    print(f"{'perturbations (2 layers x 4 prompts x 9)':42s} {statistics.median(pert):8.2f} "
          f"{statistics.median(pert) / base:10.2f} {statistics.median(pert) / full:10.2f}")
    print(f"{'probe.run per checkpoint, last token':42s} {run_last[0]:8.2f} {run_last[0] / base:10.2f} "
          f"{run_last[0] / full:10.2f} {run_last[1] * mb:12.1f}")
    print(f"{'context (shared basis, once per model)':42s} {t_ctx:8.2f}")
    print(f"all-token capture peak RSS growth: {few * mb:.1f} MB with {BATCH} prompts, "
          f"{many * mb:.1f} MB with {n_prompts} (one batch of activations: "
          f"{BATCH * SEQ * layout.n_points * layout.d_model * 4 * mb:.1f} MB); "
          f"tracemalloc peak (Python/numpy) {py_peak * mb:.1f} MB")
    for mode in ("last token", "all tokens"):
        r = med[f"capture + metrics, {mode}"] / base
        print(f"target capture + metrics <= 1.5x plain forward ({mode}): {r:.2f}x base-model "
              f"forward -> {'PASS' if r <= 1.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
