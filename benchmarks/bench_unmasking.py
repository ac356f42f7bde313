"""Causal unmasking: KV-cached, prefixes batched (``unmask_cached``) vs the naive loop.

The naive loop (``unmask_naive``) completes one prefix at a time and recomputes the whole
sequence for every generated token. Both run on a Pythia-14M-shaped GPT-NeoX (6 layers,
d_model 128, 4 heads, vocab 50304) with seeded random weights, on seeded random items.
Prints medians over repeats, the speed-up, and the check that the generated tokens are
identical and the log-probabilities equal to float rounding (max |Δ|).

    python benchmarks/bench_unmasking.py [--items 2] [--length 16] [--repeats 3]

The naive loop runs max(1, repeats - 2) times (it dominates the run time).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import load_average, pythia14m_shaped, timed

from ingest.probes.unmasking import unmask_cached, unmask_naive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = pythia14m_shaped()
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 50304, size=a.length) for _ in range(a.items)]
    n_gen = a.items * a.length * (a.length - 1) // 2
    unmask_cached(model, items[:1])  # warm-up
    t_naive, ref = timed(lambda: unmask_naive(model, items), max(1, a.repeats - 2))
    t_cached, got = timed(lambda: unmask_cached(model, items), a.repeats)
    t_per_item, per_item = timed(lambda: unmask_cached(model, items, max_rows=a.length - 1), a.repeats)
    same = all(np.array_equal(x.tokens, y.tokens) for x, y in zip(ref, got))
    same_pi = all(np.array_equal(x.tokens, y.tokens) for x, y in zip(ref, per_item))
    dlp = max(float(np.abs(x.logprobs - y.logprobs).max()) for x, y in zip(ref, got))
    print(f"model: Pythia-14M-shaped GPT-NeoX, torch threads {torch.get_num_threads()}")
    print(f"items {a.items} x {a.length} tokens: {len(ref)} prefixes, {n_gen} generated tokens")
    print(f"naive loop (prefix by prefix, full recompute) : {t_naive:8.3f} s  (median)")
    print(f"cached, one item's prefixes per batch         : {t_per_item:8.3f} s  speed-up {t_naive / t_per_item:5.1f}x")
    print(f"cached, all prefixes of all items batched     : {t_cached:8.3f} s  speed-up {t_naive / t_cached:5.1f}x")
    print(f"generated tokens identical: {same and same_pi}; max |delta log-prob| = {dlp:.2e}")
    print(load_average())
    if not (same and same_pi):
        raise SystemExit("outputs differ")


if __name__ == "__main__":
    main()
