"""One tokenizer rule for every probe that reads text (``ingest.tokenizers``)."""
from __future__ import annotations

import json

import pytest

from ingest.sources import Checkpoint
from ingest.tokenizers import byte_tokenize, tokenizer_for

WORDS = ["[UNK]", "[BOS]", "the", "cat", "sat"]


def checkpoint(folder, vocab: int = 256) -> Checkpoint:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "vocab_size": vocab}))
    return Checkpoint("local/x", 0, "step0", "local", folder=folder)


def save_word_tokenizer(folder) -> None:
    """A word-level tokenizer that adds [BOS] as its special token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]").save_pretrained(folder)


def test_folder_without_tokenizer_files_reads_bytes(tmp_path):
    """transformers would build an empty tokenizer from config.json alone; bytes are used instead."""
    assert tokenizer_for(checkpoint(tmp_path / "ck"), 256, add_special_tokens=False) is byte_tokenize
    assert byte_tokenize("hé") == [104, 195, 169]


def test_no_tokenizer_and_a_small_vocabulary_reads_nothing(tmp_path):
    assert tokenizer_for(checkpoint(tmp_path / "ck", vocab=100), 100, add_special_tokens=True) is None


@pytest.mark.parametrize("special, expected", [(False, [2, 3, 4]), (True, [1, 2, 3, 4])])
def test_own_tokenizer_with_special_tokens_as_asked(tmp_path, special, expected):
    ck = checkpoint(tmp_path / "ck", vocab=len(WORDS))
    save_word_tokenizer(ck.folder)
    assert tokenizer_for(ck, len(WORDS), add_special_tokens=special)("the cat sat") == expected
