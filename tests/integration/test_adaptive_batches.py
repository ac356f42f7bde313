"""Batch sizes adapt to memory: a real out-of-memory (the CPU allocator refusing under an
address-space limit) splits the batch, and the numbers equal those of small batches."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ingest import batching

CHILD = textwrap.dedent("""
    import resource, sys, numpy as np
    from transformers import AutoModelForCausalLM
    from ingest.probes.perplexity import forward_nll
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
    rng = np.random.default_rng(0)
    items = [rng.integers(0, model.config.vocab_size, 256) for _ in range(512)]
    small = forward_nll(model, items, 8)                    # the reference: batches of 8
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
    limit = vm + 200 * 2**20                                # 200 MB more: 512 x 256 x vocab logits do not fit
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    big = forward_nll(model, items, 512)
    ok = all(abs(a[0] - b[0]) <= 1e-6 * abs(b[0]) and a[1] == b[1] for a, b in zip(big, small))
    print("MATCH" if ok else "DIFFER")
""")


def test_real_out_of_memory_halves_the_batch_and_keeps_the_numbers(toy_suite):
    ckpt = toy_suite / "neox-2l" / "step1024"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ckpt)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MATCH" in proc.stdout
    assert "out of memory at batch 512: retrying with 256" in proc.stderr


def test_adaptive_map_splits_only_on_out_of_memory():
    seen = []

    def run(s, e):
        seen.append(e - s)
        if e - s > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return list(range(s, e))

    out = batching.adaptive_map(23, 16, run, key=("test-split",))
    assert [x for b in out for x in b] == list(range(23))
    assert seen[:3] == [16, 8, 4] and max(len(b) for b in out) == 4
    # the size that worked is remembered for the next call with the same key
    seen.clear()
    batching.adaptive_map(8, 16, run, key=("test-split",))
    assert seen == [4, 4]

    def broken(s, e):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        batching.adaptive_map(4, 4, broken, key=("test-other",))

    def never(s, e):
        raise MemoryError()

    with pytest.raises(MemoryError):  # one item that does not fit: give up
        batching.adaptive_map(2, 2, never, key=("test-never",))


def test_auto_batch_size_follows_free_memory():
    per_item = batching.forward_bytes(256, 64, 2, 50304)
    n = batching.initial("auto", per_item, "cpu")
    assert 1 <= n <= 1024
    assert n == min(1024, batching.free_bytes("cpu") // 2 // per_item) or n == 1
    assert batching.initial(7, per_item, "cpu") == 7
    with pytest.raises(Exception, match="batch_size"):
        batching.initial(0, per_item, "cpu")
