"""Text to token ids, for every probe that reads text (perplexity sets, graph and residual prompts).

One rule finds the tokenizer: a hub checkpoint's is its repo's at the checkpoint's revision;
a local checkpoint has one only when its folder holds tokenizer files (transformers 5 would
otherwise build an empty tokenizer from ``config.json`` alone, and every text would become
no tokens). A tokenizer with two tokens or fewer is such an empty one and counts as none.
Without a tokenizer, a model whose vocabulary holds the 256 byte values (the toy suite:
its token ids are the text) reads text as UTF-8 bytes; any other has no way to read text.

Special tokens are the caller's explicit choice (``add_special_tokens``), never a library
default: perplexity sets and graph prompts are scored token by token and add none;
residual prompts keep the tokenizer's own (a BOS where it adds one). Bytes have none.
``trust_remote_code`` is never set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

Tokenize = Callable[[str], list[int]]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def byte_tokenize(text: str) -> list[int]:
    """UTF-8 bytes as token ids: the toy suite's 'tokenizer' (vocab 256, ids are the text)."""
    return list(text.encode("utf-8"))


def own_tokenizer(checkpoint: Any):
    """The checkpoint's own Hugging Face tokenizer, or None when it has none (see the module
    docstring for where it is looked for)."""
    hub = checkpoint.source == "hub"
    folder = Path(checkpoint.folder) if checkpoint.folder is not None else None
    if not hub and (folder is None or not any((folder / f).exists() for f in TOKENIZER_FILES)):
        return None
    from transformers import AutoTokenizer
    where = checkpoint.hub_repo if hub else str(folder)
    kwargs = {"revision": checkpoint.revision} if hub else {}
    try:
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=False, **kwargs)
    except Exception:  # missing or unreadable tokenizer files: transformers raises many types
        return None
    return tok if len(tok) > 2 else None


def tokenizer_for(checkpoint: Any, vocab_size: int, *, add_special_tokens: bool) -> Tokenize | None:
    """text -> token ids for this checkpoint's model: its own tokenizer (with or without its
    special tokens, as asked), else UTF-8 bytes for a byte-vocabulary model, else None."""
    tok = own_tokenizer(checkpoint)
    if tok is not None:
        return lambda text: list(tok(text, add_special_tokens=add_special_tokens)["input_ids"])
    return byte_tokenize if vocab_size >= 256 else None
