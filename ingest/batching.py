"""Batch sizes that adapt to memory, for the probes that run a model over many prompts.

A probe asks for ``batch_size`` items a forward pass. ``"auto"`` starts from what fits: half
the free memory of the device (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable``)
divided by an estimate of one item's activation bytes. Whatever the start, a batch that
runs out of memory (CUDA's OutOfMemoryError, or the CPU allocator refusing) is split in
half and retried, down to one item; the size that worked is remembered for the rest of the
process (per probe and model shape), so a worker finds its size once. Results do not depend
on the batch size beyond float rounding: every item is computed on its own row.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import TypeVar

from ingest.errors import TdwError

T = TypeVar("T")
_learned: dict[tuple, int] = {}
OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_oom(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return isinstance(e, RuntimeError) and any(t in str(e).lower() for t in OOM_TEXT)


def free_bytes(device: str) -> int:
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def initial(batch_size, per_item_bytes: int, device: str, cap: int = 1024) -> int:
    """The starting batch size: an integer as given, or ``auto`` from free memory."""
    if str(batch_size) != "auto":
        n = int(batch_size)
        if n < 1:
            raise TdwError(f"batch_size must be >= 1 or auto, got {batch_size!r}")
        return n
    return int(max(1, min(cap, free_bytes(device) // 2 // max(1, per_item_bytes))))


def forward_bytes(n_tokens: int, d_model: int, n_layers: int, vocab: int, logits: bool = True) -> int:
    """Rough float32 activation bytes of one item's forward pass (what ``auto`` divides by)."""
    return 4 * n_tokens * (8 * d_model * max(1, n_layers) + (3 * vocab if logits else 0))


def adaptive_map(n: int, batch_size: int, run: Callable[[int, int], T], key: tuple = ()) -> list[T]:
    """``run(start, stop)`` over [0, n) in batches, halving a batch that runs out of memory."""
    size = max(1, min(batch_size, _learned.get(key, batch_size)))
    out: list[T] = []
    start = 0
    while start < n:
        stop = min(n, start + size)
        try:
            out.append(run(start, stop))
        except Exception as e:  # noqa: BLE001 — only out-of-memory is handled, the rest re-raised
            if not is_oom(e) or size == 1:
                raise
            size = max(1, (stop - start) // 2)
            _learned[key] = size
            _release()
            sys.stderr.write(f"out of memory at batch {stop - start}: retrying with {size}\n")
            continue
        start = stop
    return out


def _release() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
