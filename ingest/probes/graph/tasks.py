"""Prompt sets for the component graph: which tokens go in, and where the graph is measured.

A task is a fixed list of prompts (token ids) and, per prompt, the measured positions
[measure_start, measure_end): at a measured position t every component's output is
compared between the clean and the ablated run, and the logits at t are scored on the
next token ids[t + 1] (so measure_end <= length - 1). Prompts of unequal length are
right-padded in the batch (``ingest.prompts``): with causal attention a padded tail never
reaches the real positions, and pads are never measured nor averaged into a mean ablation.

- ``induction`` (default): prompt i is a uniform random segment R of ``seq_len // 2``
  tokens followed by R again, drawn with ``numpy.random.default_rng([seed, i])`` so each
  prompt is reproducible on its own. Measured on the repeat: positions half .. 2*half - 2,
  whose next tokens (the repeat from its second token on) are predictable by copying only.
- ``markov``: held-out Markov text of the toy corpus the model was trained on (its
  ``suite.json``; the default ``CorpusSpec`` elsewhere), ``seq_len`` tokens, every
  position but the last measured.
- ``text``: the user's prompts, ``text_file`` = a ``.txt`` file (one prompt per non-empty
  line) or ``.jsonl`` (one JSON object with a ``text`` field, or a JSON string, per line),
  tokenized without special tokens by ``ingest.tokenizers`` (the model's own tokenizer, or
  UTF-8 bytes for a byte-vocabulary model without one: the toy suite). Every position but the last is measured.

The prompts' ids and measured ranges are stored in ``raw.graph_prompts``, so every edge
can be recomputed from the warehouse alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.errors import TdwError
from ingest.prompts import PromptSet
from ingest.tokenizers import tokenizer_for

if TYPE_CHECKING:
    import torch

TASKS = ("induction", "markov", "text")


@dataclass(frozen=True)
class TaskPrompts(PromptSet):
    """A task's prompts (``source`` is the task) and the positions measured in each."""

    measure_start: np.ndarray  # [n] int64
    measure_end: np.ndarray  # [n] int64 (exclusive, <= length_i - 1)
    seeds: np.ndarray  # [n] int64: prompt i drawn with rng([seed, i]); -1: user text

    @property
    def task(self) -> str:
        return self.source

    def batch(self) -> TaskBatch:
        import torch

        ids, lengths = self.padded()  # [n, T] right-padded, [n]
        pos = torch.arange(ids.shape[1])
        valid = pos[None, :] < lengths[:, None]  # [n, T]
        measure = (pos[None, :] >= torch.from_numpy(self.measure_start)[:, None]) & (
            pos[None, :] < torch.from_numpy(self.measure_end)[:, None]
        )
        return TaskBatch.of(ids, valid, measure)


@dataclass(frozen=True)
class TaskBatch:
    ids: torch.Tensor  # [n, T] long
    valid: torch.Tensor  # [n, T] bool, real (non-pad) tokens
    measure: torch.Tensor  # [n, T] bool, measured positions
    targets: torch.Tensor  # [n, T] long, ids[:, t + 1]

    @classmethod
    def of(cls, ids: torch.Tensor, valid: torch.Tensor, measure: torch.Tensor) -> TaskBatch:
        """The batch of these ids, its targets the next ids (0 at the last position)."""
        targets = ids.new_zeros(ids.shape)
        targets[:, :-1] = ids[:, 1:]
        return cls(ids, valid, measure, targets)

    def to(self, device: str) -> TaskBatch:
        return TaskBatch(*(t.to(device) for t in (self.ids, self.valid, self.measure, self.targets)))


def induction_prompts(n: int, seq_len: int, seed: int, vocab: int) -> TaskPrompts:
    if seq_len < 4 or seq_len % 2:
        raise TdwError(f"induction seq_len must be even and >= 4, got {seq_len}")
    half = seq_len // 2
    prompts = []
    for i in range(n):
        seg = np.random.default_rng([seed, i]).integers(0, vocab, size=half)
        prompts.append(np.concatenate([seg, seg]).astype(np.int64))
    return TaskPrompts(
        tuple(prompts), "induction", np.full(n, half), np.full(n, seq_len - 1), np.full(n, seed, dtype=np.int64)
    )


def markov_prompts(n: int, seq_len: int, seed: int, corpus: dict[str, Any] | None) -> TaskPrompts:
    from ingest.toy.corpus import Corpus, CorpusSpec

    spec = CorpusSpec(**corpus) if corpus else CorpusSpec()
    c = Corpus(spec)
    prompts = tuple(c.text(np.random.default_rng([seed, i]), 1, seq_len)[0] for i in range(n))
    return TaskPrompts(
        prompts, "markov", np.zeros(n, dtype=np.int64), np.full(n, seq_len - 1), np.full(n, seed, dtype=np.int64)
    )


def read_prompt_texts(path: str | Path) -> list[str]:
    """Prompts of a .txt (one per non-empty line) or .jsonl (``text`` field or string) file."""
    path = Path(path).expanduser()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TdwError(f"task file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TdwError(f"cannot read task file {path}: {type(e).__name__}") from None
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if not lines:
        raise TdwError(f"task file {path} is empty")
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for i, ln in enumerate(lines, 1):
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError:
            raise TdwError(f"{path}:{i}: not a JSON line") from None
        text = obj.get("text") if isinstance(obj, dict) else obj
        if not isinstance(text, str) or not text:
            raise TdwError(f"{path}:{i}: expected a JSON string or an object with a 'text' string")
        texts.append(text)
    return texts


def text_prompts(path: str | Path, tokenize: Callable[[str], list[int]], n_max: int, n_ctx: int) -> TaskPrompts:
    prompts = []
    for i, text in enumerate(read_prompt_texts(path)[:n_max]):
        ids = np.asarray(tokenize(text), dtype=np.int64)
        if ids.size < 2:
            raise TdwError(f"{path}: prompt {i} has {ids.size} token(s); at least 2 are needed")
        if ids.size > n_ctx:
            raise TdwError(f"{path}: prompt {i} has {ids.size} tokens, longer than the model's context of {n_ctx}")
        prompts.append(ids)
    n = len(prompts)
    return TaskPrompts(
        tuple(prompts),
        "text",
        np.zeros(n, dtype=np.int64),
        np.array([p.size - 1 for p in prompts], dtype=np.int64),
        np.full(n, -1),
    )


def build_prompts(task: str, params: dict[str, Any], checkpoint: Any, vocab: int, n_ctx: int) -> TaskPrompts:
    """The prompt set of one task for one model (the same for all its checkpoints)."""
    n, seq_len, seed = int(params["n_prompts"]), int(params["seq_len"]), int(params["seed"])
    if n < 1:
        raise TdwError(f"n_prompts must be >= 1, got {n}")
    if task in ("induction", "markov") and seq_len > n_ctx:
        raise TdwError(f"seq_len {seq_len} is longer than the model's context of {n_ctx}")
    if task == "induction":
        return induction_prompts(n, seq_len, seed, vocab)
    if task == "markov":
        corpus = checkpoint.suite().get("corpus")
        spec_vocab = (corpus or {}).get("vocab_size", 256)
        if spec_vocab > vocab:
            raise TdwError(f"the markov task's corpus vocabulary ({spec_vocab}) exceeds the model's ({vocab})")
        return markov_prompts(n, seq_len, seed, corpus)
    if task == "text":
        if not params.get("text_file"):
            raise TdwError("the text task needs a file: set the graph parameter text_file")
        tokenize = tokenizer_for(checkpoint, vocab, add_special_tokens=False)
        if tokenize is None:
            raise TdwError(
                f"{checkpoint.model_id} has no tokenizer and a vocabulary of {vocab} "
                "< 256 bytes: cannot tokenize text prompts"
            )
        return text_prompts(params["text_file"], tokenize, n, n_ctx)
    raise TdwError(f"unknown graph task {task!r}; available: {', '.join(TASKS)}")
