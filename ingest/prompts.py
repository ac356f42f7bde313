"""A set of prompts as token ids, and the right-padded batch a probe feeds the model.

The graph probe (``graph/tasks.py``: tasks with measured positions) and the residual probe
(``residual/prompts.py``: states at each prompt's last real token) both run prompts of
unequal length in one batch. Right padding with id 0 is safe for both: attention is causal,
so a real token never sees the padding after it, and each probe reads only real positions
(``lengths``). The set's ``digest`` is stored with the residual tables, so a result names
the exact prompts it came from.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PromptSet:
    prompts: tuple[np.ndarray, ...]     # each [length_i] int64
    source: str                         # how they were made: a task name, 'toy:...' or a file path

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def lengths(self) -> np.ndarray:
        """[n] int64: each prompt's number of real tokens."""
        return np.array([np.asarray(p).size for p in self.prompts], dtype=np.int64)

    def digest(self) -> str:
        """sha256 over the prompts' int64 ids, each followed by '|' (16 hex digits)."""
        h = hashlib.sha256()
        for p in self.prompts:
            h.update(np.asarray(p, dtype=np.int64).tobytes() + b"|")
        return h.hexdigest()[:16]

    def padded(self, start: int = 0, stop: int | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Prompts ``start:stop`` right-padded: ([n, max_len] int64 ids, [n] int64 lengths)."""
        return pad_right(self.prompts[start:stop])


def pad_right(prompts: Sequence[np.ndarray]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Right-pad token id arrays with 0: ([n, max_len] int64, [n] lengths)."""
    import torch
    lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    ids = torch.zeros((len(prompts), int(lengths.max())), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = torch.as_tensor(np.asarray(p, dtype=np.int64))
    return ids, lengths
