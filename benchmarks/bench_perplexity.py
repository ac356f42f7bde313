"""Perplexity (forward) against the obvious loop, on a Pythia-14M-shaped model.

The baseline is what a user would write: ``model(input_ids, attention_mask, labels=...)``
over the same items in the same batches (padding labelled -100), the loss times the number
of scored tokens summed. The probe's ``forward_nll`` runs the decoder body, then applies
the unembedding to the scored positions only, in cache-sized blocks of positions x
vocabulary rows (a running log-sum-exp and the target's logit per position), so the
[batch, pos, vocab] float32 logits are never formed.
Both run in one process, alternating, on a GPT-NeoX with Pythia-14M's shape (6 layers,
d_model 128, 4 heads, vocab 50304, seeded random weights) and seeded random items.
Prints the median tokens per second of each over ``--repeats`` runs (at least 5), the
ratio (goal >= 1.0x), the largest relative difference of the per-item NLL sums, and the
load average.

    python benchmarks/bench_perplexity.py [--items 32] [--length 128] [--batch 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _common import load_average, pythia14m_shaped

from ingest.probes.perplexity import forward_nll


@torch.no_grad()
def plain_loop(model, items: list[np.ndarray], batch: int) -> list[float]:
    """Σ NLL per item from the model's own loss, in the same batches as the probe's."""
    out = []
    for b in range(0, len(items), batch):
        group = items[b : b + batch]
        width = max(x.size for x in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, x in enumerate(group):
            ids[r, : x.size], mask[r, : x.size] = torch.from_numpy(x), 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        out.append(float(loss) * int(mask[:, 1:].sum()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the probe's default: 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = pythia14m_shaped()
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 50304, size=a.length) for _ in range(a.items)]
    n_tok = sum(x.size - 1 for x in items)
    forward_nll(model, items[:2], a.batch)  # warm-up
    plain_loop(model, items[:2], a.batch)
    t_probe, t_plain = [], []
    for _ in range(max(5, a.repeats)):  # alternate: same load for both
        t = time.perf_counter()
        got = forward_nll(model, items, a.batch)
        t_probe.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = plain_loop(model, items, a.batch)
        t_plain.append(time.perf_counter() - t)
    per_batch = [sum(r[0] for r in got[b : b + a.batch]) for b in range(0, len(items), a.batch)]
    diff = max(abs(x - y) / abs(y) for x, y in zip(per_batch, ref))
    probe, plain = statistics.median(t_probe), statistics.median(t_plain)
    print(
        f"Pythia-14M-shaped GPT-NeoX, {a.items} items x {a.length} tokens, batch {a.batch}, "
        f"torch threads {torch.get_num_threads()}, median of {len(t_probe)} runs"
    )
    print(f"plain model(..., labels=...) loop : {plain:7.3f} s  {n_tok / plain:9.0f} tokens/s")
    print(f"forward_nll (blocked unembedding) : {probe:7.3f} s  {n_tok / probe:9.0f} tokens/s")
    print(
        f"ratio (probe tokens/s over plain): {plain / probe:.2f}x (goal >= 1.0x); "
        f"max relative difference of the NLL sums: {diff:.1e}"
    )
    print(load_average())
    if diff > 1e-4:
        raise SystemExit("the NLLs differ")


if __name__ == "__main__":
    main()
