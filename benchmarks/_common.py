"""What the benchmarks share, written once: the Pythia-14M-shaped model most of them time,
its checkpoints on disk, the median timers, and the load-average line.

The benchmarks run as scripts (``python benchmarks/bench_x.py``), so this folder is first on
``sys.path`` and ``from _common import ...`` finds this module; the repository root is
added as well, so the scripts import the project from this checkout and not from whatever
``tdw`` is installed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

# Pythia-14M's shape: GPT-NeoX, 6 layers, d_model 128, 4 heads, vocab 50304, parallel
# residual, untied unembedding (14,067,712 parameters)
PYTHIA14M = {
    "vocab_size": 50304,
    "hidden_size": 128,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 2048,
    "rotary_pct": 0.25,
    "use_parallel_residual": True,
    "tie_word_embeddings": False,
}


def pythia14m_shaped(seed: int = 0, **overrides: Any):
    """A GPT-NeoX of Pythia-14M's shape (``overrides``: other config fields) with seeded
    random weights, in eval mode."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(GPTNeoXConfig(**(PYTHIA14M | overrides))).eval()


def write_14m(root: Path, n: int) -> None:
    """``n`` checkpoints ``step0, step1000, ...`` of a Pythia-14M-shaped model under ``root``:
    seeded random weights that random-walk from one checkpoint to the next."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = pythia14m_shaped(0)
    for i in range(n):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        model.save_pretrained(root / f"step{i * 1000}")


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median wall seconds of ``repeats`` calls, the last call's result)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall milliseconds of ``repeats`` calls."""
    return 1000 * timed(fn, repeats)[0]


def load_average() -> str:
    """The printed load-average line: a benchmark's figures mean little on a busy machine."""
    return f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
