"""The residual probe's prompt set, seeded and stored with the results.

``prompts`` parameter:

- ``toy`` (default): ``n_prompts`` sequences of ``prompt_len`` tokens of held-out Markov text
  from the toy corpus (``Corpus.text``), with the corpus recorded in the model's
  ``suite.json`` when there is one (else the default corpus over the first 256 ids),
  drawn with ``numpy.random.default_rng(seed)``;
- a ``.txt`` file: one prompt per non-empty line, tokenized by ``ingest.tokenizers`` with
  the tokenizer's special tokens (a BOS where it adds one): the checkpoint's own tokenizer,
  else UTF-8 bytes for a byte-vocabulary model (the toy suite's "tokenizer");
- a ``.json`` file (a list of lists of token ids) or ``.npy`` file (a 2-D integer array).

Every prompt must have at least one token, at most the model's context, and ids inside
the vocabulary; anything else is a ``TdwError`` raised before any job runs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ingest.errors import TdwError
from ingest.probes.residual.sites import Layout
from ingest.prompts import PromptSet
from ingest.tokenizers import byte_tokenize, tokenizer_for


def _toy(checkpoint, params: dict, vocab: int) -> PromptSet:
    from ingest.toy.corpus import Corpus, CorpusSpec

    spec = (checkpoint.suite() or {}).get("corpus") if checkpoint is not None else None
    corpus_spec = CorpusSpec(**spec) if spec else CorpusSpec(vocab_size=min(256, vocab))
    n, length, seed = int(params["n_prompts"]), int(params["prompt_len"]), int(params["seed"])
    if n <= 0 or length <= 0:
        raise TdwError(f"residual probe: empty prompt set (n_prompts={n}, prompt_len={length})")
    ids = Corpus(corpus_spec).text(np.random.default_rng(seed), n, length)
    return PromptSet(tuple(ids), f"toy:markov corpus_seed={corpus_spec.seed} seed={seed} "
                                 f"n={n} len={length}")


def _text(path: Path, checkpoint, vocab: int) -> list[np.ndarray]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    tokenize = (byte_tokenize if checkpoint is None
                else tokenizer_for(checkpoint, vocab, add_special_tokens=True))
    if tokenize is None:
        raise TdwError(f"residual probe: {checkpoint.model_id} has no tokenizer and a vocabulary of "
                       f"{vocab} < 256 bytes: give token ids (.json or .npy) instead of {path.name!r}")
    return [np.asarray(tokenize(ln), dtype=np.int64) for ln in lines]


def _tokens(path: Path) -> list[np.ndarray]:
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise TdwError(f"{path}: expected a 2-D integer array of token ids, got {arr.dtype} "
                           f"{arr.shape}")
        return [row.astype(np.int64) for row in arr]
    try:
        data = json.loads(path.read_text())
        return [np.asarray(p, dtype=np.int64).reshape(-1) for p in data]
    except (ValueError, TypeError) as e:
        raise TdwError(f"{path}: not a JSON list of token-id lists ({e})") from None


def load_prompts(params: dict, layout: Layout, checkpoint=None) -> PromptSet:
    """The prompt set named by ``params['prompts']``, validated against the model."""
    spec = str(params["prompts"])
    if spec == "toy":
        ps = _toy(checkpoint, params, layout.vocab_size)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TdwError(f"residual probe: prompt file {spec!r} not found (or use 'toy')")
        if path.suffix in (".json", ".npy"):
            prompts = _tokens(path)
        elif path.suffix == ".txt":
            prompts = _text(path, checkpoint, layout.vocab_size)
        else:
            raise TdwError(f"residual probe: prompt file {path.name!r} must be .txt, .json or .npy")
        ps = PromptSet(tuple(prompts), str(path.resolve()))
    validate_prompts(ps, layout)
    return ps


def validate_prompts(ps: PromptSet, layout: Layout) -> None:
    if len(ps) == 0:
        raise TdwError(f"residual probe: the prompt set {ps.source!r} is empty")
    for i, p in enumerate(ps.prompts):
        if len(p) == 0:
            raise TdwError(f"residual probe: prompt {i} of {ps.source!r} has no tokens")
        if layout.context and len(p) > layout.context:
            raise TdwError(f"residual probe: prompt {i} has {len(p)} tokens, more than the "
                           f"model's context of {layout.context}")
        if p.min() < 0 or p.max() >= layout.vocab_size:
            raise TdwError(f"residual probe: prompt {i} has token ids outside the vocabulary "
                           f"[0, {layout.vocab_size})")
