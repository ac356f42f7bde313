"""Evaluation sets for the perplexity probes (METHODS §B, eq. 6).

An evaluation set is a fixed, ordered list of token-id sequences ("items"); the warehouse
stores its ids and a content hash, so every perplexity in a mart can be recomputed from
the warehouse alone. A spec names one of

- ``toy`` (the default): held-out toy-corpus Markov text, ``n_items`` sequences of
  ``item_len`` tokens drawn from the corpus the model was trained on (its ``suite.json``;
  the default ``CorpusSpec`` elsewhere) with a seed of its own (``eval_seed``), so they are
  not the training draws;
- ``toy_repeats``: held-out repeated segments, ``n_items`` sequences ``R R`` of ``item_len``
  tokens (default 32: |R| = 16, the graph and capability tasks' length, inside the toy
  corpus's training periods) with R uniform over the vocabulary and its own seed. The first
  half is unpredictable (its loss stays near log(vocab)); the second is predictable only by
  copying, so the set's perplexity falls with the induction transition — from about the
  vocabulary size to about its square root when the copy is near perfect (half the tokens
  at ~log V nats, half at ~0). The per-item rows (``raw.perplexity_items``) hold each item's
  NLL sum;
- a token file: ``.npy`` (an integer array: 2-D, one item per row, or 1-D, cut into items
  of ``item_len``) or a text file of ids (one item per line, ids separated by spaces or
  commas; a ``.txt`` whose every line is ids is read as ids);
- a text file (any other text, one item per line) or a local dataset (``.jsonl``: one JSON
  object per line with a ``text`` field, or a JSON string), tokenized without special
  tokens by ``ingest.tokenizers`` (the model's own tokenizer, or UTF-8 bytes for a
  byte-vocabulary model without one, such as the toy suite).

- ``hf:<name>[:<config>]:<split>[:<column>]``: a Hugging Face ``datasets`` split, from the hub
  or, offline, its cache (``ingest.hfdatasets``); ``--param perplexity.dataset=hf:...`` is
  the same as ``eval_set=hf:...`` (the set is then named after the spec).

``--param perplexity.eval_set=NAME`` picks a set; a built-in set (``toy``, ``toy_repeats``) can
also be named by ``--param perplexity.dataset=NAME`` while ``eval_set`` is left at its
default. ``tokens:PATH`` and ``text:PATH`` force the reading. Items longer than ``max_len`` (the
model's context) are cut into consecutive windows, so nothing is dropped but windows of a
single token, which have nothing to predict. ``max_items`` keeps the first items only (the
paper: the first 500 LAMBADA test items). Bad input fails with one ``TdwError`` line: an
empty file, a file that is not text, ids outside the vocabulary, a non-integer array.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.errors import TdwError
from ingest.tokenizers import tokenizer_for

_IDS_LINE = re.compile(r"^\s*-?\d+(?:[\s,]+-?\d+)*\s*,?\s*$")
TOY = "toy"
TOY_REPEATS = "toy_repeats"
BUILTIN = (TOY, TOY_REPEATS)
HF = "hf:"  # a Hugging Face `datasets` split (ingest.hfdatasets)


@dataclass(frozen=True)
class EvalSet:
    name: str  # the `dataset` column of the marts
    spec: str  # what the user named
    items: tuple[np.ndarray, ...]  # each [t_i] int64, t_i >= 2

    @property
    def hash(self) -> str:
        """sha256 of the items (length, then ids, little-endian int64): the set's identity."""
        h = hashlib.sha256()
        for x in self.items:
            h.update(np.int64(x.size).tobytes())
            h.update(x.astype("<i8").tobytes())
        return h.hexdigest()[:16]

    @property
    def n_tokens(self) -> int:
        return int(sum(x.size for x in self.items))


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise TdwError(f"evaluation file {str(path)!r} not found")
    data = path.read_bytes()
    if b"\x00" in data:
        raise TdwError(f"evaluation file {path}: not a text file (it holds NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TdwError(f"evaluation file {path}: not a UTF-8 text file (bad byte at offset {e.start})") from None
    if not text.strip():
        raise TdwError(f"evaluation file {path} is empty")
    return text


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _ids_from_lines(lines: list[str], path: Path) -> list[np.ndarray]:
    out = []
    for i, ln in enumerate(lines, 1):
        if not _IDS_LINE.match(ln):
            raise TdwError(f"token file {path}: line {i} is not a list of integer ids: {ln[:40]!r}")
        out.append(np.array([int(t) for t in re.split(r"[\s,]+", ln.strip().strip(",")) if t], dtype=np.int64))
    return out


def _ids_from_npy(path: Path, item_len: int) -> list[np.ndarray]:
    if not path.is_file():
        raise TdwError(f"evaluation file {str(path)!r} not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise TdwError(f"token file {path}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    if arr.size == 0:
        raise TdwError(f"token file {path} is empty")
    if arr.dtype.kind not in "iu":
        raise TdwError(f"token file {path}: token ids must be integers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        return [arr[i : i + item_len].astype(np.int64) for i in range(0, arr.size, item_len)]
    if arr.ndim == 2:
        return [row.astype(np.int64) for row in arr]
    raise TdwError(f"token file {path}: expected a 1-D or 2-D array of ids, got shape {arr.shape}")


def _texts_from_jsonl(text: str, path: Path) -> list[str]:
    out = []
    for i, ln in enumerate(_lines(text), 1):
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError:
            raise TdwError(f"dataset {path}: line {i} is not JSON") from None
        value = obj.get("text") if isinstance(obj, dict) else obj
        if not isinstance(value, str):
            raise TdwError(f"dataset {path}: line {i} has no string 'text' field")
        if value.strip():
            out.append(value)
    if not out:
        raise TdwError(f"dataset {path} is empty (no non-blank 'text')")
    return out


def _windows(items: list[np.ndarray], max_len: int) -> list[np.ndarray]:
    out = []
    for x in items:
        out += [x[i : i + max_len] for i in range(0, x.size, max_len)]
    return [x for x in out if x.size >= 2]


def _check_vocab(items: list[np.ndarray], vocab_size: int, where: str) -> None:
    for i, x in enumerate(items):
        bad = np.flatnonzero((x < 0) | (x >= vocab_size))
        if bad.size:
            raise TdwError(
                f"{where}: item {i} holds token id {int(x[bad[0]])} outside the model's vocabulary [0, {vocab_size})"
            )


def toy_items(corpus: dict[str, Any] | None, n_items: int, item_len: int, seed: int) -> list[np.ndarray]:
    """[n_items] held-out Markov-text items from the toy corpus (its seed stream is not training's)."""
    from ingest.toy.corpus import Corpus, CorpusSpec

    spec = CorpusSpec(**corpus) if corpus else CorpusSpec()
    rng = np.random.default_rng([seed, 7919])
    x = Corpus(spec).text(rng, n_items, item_len or spec.seq_len)  # [n_items, item_len]
    return list(x)


def repeat_items(corpus: dict[str, Any] | None, n_items: int, item_len: int, seed: int) -> list[np.ndarray]:
    """[n_items] held-out ``R R`` items of ``item_len`` tokens (|R| = ceil(item_len / 2); an odd
    length drops the repeat's last token), R uniform over the corpus vocabulary."""
    from ingest.toy.corpus import Corpus, CorpusSpec

    spec = CorpusSpec(**corpus) if corpus else CorpusSpec()
    length = item_len or 32
    if length < 4:
        raise TdwError(f"toy_repeats needs item_len >= 4 (a segment of 2 and its repeat), got {length}")
    rng = np.random.default_rng([seed, 104729])
    x = Corpus(spec).induction(rng, n_items, (length + 1) // 2)  # [n_items, 2 * ceil(len / 2)]
    return list(x[:, :length])


def _hf_items(spec: str, tokenize: Callable[[str], list[int]] | None, max_items: int) -> tuple[list, str]:
    """A ``datasets`` split's texts, tokenized (``ingest.hfdatasets``); only the first
    ``max_items`` rows are read when a limit is set."""
    from ingest.hfdatasets import hf_texts

    label, texts = hf_texts(spec, max_items)
    if tokenize is None:
        raise TdwError(f"cannot read {spec}: the model has no tokenizer")
    return [np.asarray(tokenize(t), dtype=np.int64) for t in texts], label


@dataclass(frozen=True)
class EvalRequest:
    """The evaluation set a perplexity probe's parameters ask for: the spec (see above), the
    toy set's size and seed, the item length (toy items; a 1-D ``.npy`` is cut into items of
    it), the first ``max_items`` kept (0: all) and the ``dataset`` label ("" : derived)."""

    spec: str = TOY
    n_items: int = 32
    item_len: int = 0
    seed: int = 0
    max_items: int = 0
    name: str = ""

    @classmethod
    def of(cls, params: dict[str, Any]) -> EvalRequest:
        spec = params.get("eval_set") or TOY
        label = params.get("dataset") or ""
        if label.startswith(HF):  # --param perplexity.dataset=hf:... names the set and its source at once
            if spec not in (TOY, label):
                raise TdwError(f"perplexity: both eval_set={spec!r} and dataset={label!r} name a source; give one")
            spec, label = label, ""
        elif spec == TOY and label in BUILTIN:  # a built-in set named by its label
            spec = label
        return cls(
            spec,
            n_items=int(params["n_items"]),
            item_len=int(params["item_len"]),
            seed=int(params["eval_seed"]),
            max_items=int(params["max_items"]),
            name=label,
        )


def load_eval_set(
    request: EvalRequest,
    *,
    vocab_size: int,
    max_len: int,
    tokenize: Callable[[str], list[int]] | None = None,
    corpus: dict[str, Any] | None = None,
) -> EvalSet:
    """Read, tokenize, window and validate one evaluation set."""
    spec, item_len, name = (request.spec or TOY).strip(), request.item_len, request.name
    if spec == TOY:
        items = toy_items(corpus, request.n_items, item_len, request.seed)
        label = name or f"toy_heldout_s{request.seed}"
    elif spec == TOY_REPEATS:
        items = repeat_items(corpus, request.n_items, item_len, request.seed)
        label = name or f"toy_repeats_s{request.seed}"
    elif spec.startswith(HF):
        items, label = _hf_items(spec, tokenize, request.max_items)
        label = name or label
        _check_vocab(items, vocab_size, f"evaluation set {spec!r}")
    else:
        mode, _, rest = spec.partition(":")
        if mode in ("tokens", "text") and rest:
            path = Path(rest).expanduser()
        else:
            mode, path = "", Path(spec).expanduser()
        label = name or path.name
        if mode != "text" and path.suffix == ".npy":
            items = _ids_from_npy(path, item_len or max_len)
        else:
            text = _read_text(path)
            lines = _lines(text)
            if mode == "tokens" or (
                mode == "" and path.suffix != ".jsonl" and all(_IDS_LINE.match(ln) for ln in lines)
            ):
                items = _ids_from_lines(lines, path)
            else:
                texts = _texts_from_jsonl(text, path) if path.suffix == ".jsonl" else lines
                if tokenize is None:
                    raise TdwError(
                        f"cannot read text file {path}: the model has no tokenizer "
                        "(give token ids instead: a .npy or a file of ids)"
                    )
                items = [np.asarray(tokenize(t), dtype=np.int64) for t in texts]
        _check_vocab(items, vocab_size, f"evaluation set {path}")
    items = _windows(items, max_len)
    if request.max_items:
        items = items[: request.max_items]
    if not items:
        raise TdwError(f"evaluation set {spec!r} has no item of at least 2 tokens")
    _check_vocab(items, vocab_size, f"evaluation set {spec!r}")
    return EvalSet(label, spec, tuple(items))


def eval_set_for(checkpoint, params: dict[str, Any]) -> EvalSet:
    """The evaluation set a perplexity probe's parameters name, for this checkpoint's model."""
    cfg = checkpoint.config()
    vocab = int(cfg.get("vocab_size") or 0)
    max_len = int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048)
    if vocab <= 0:
        raise TdwError(f"{checkpoint.model_id}: config.json has no vocab_size")
    request = EvalRequest.of(params)
    tokenize = (
        None
        if request.spec in BUILTIN or str(request.spec).endswith(".npy")
        else tokenizer_for(checkpoint, vocab, add_special_tokens=False)
    )
    return load_eval_set(
        request, vocab_size=vocab, max_len=max_len, tokenize=tokenize, corpus=checkpoint.suite().get("corpus")
    )
