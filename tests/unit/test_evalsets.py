"""Evaluation sets: every reader, and a clear one-line error for every kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest.errors import TdwError
from ingest.evalsets import EvalRequest, load_eval_set, toy_items
from ingest.tokenizers import byte_tokenize as byte_tokenizer
from ingest.toy.corpus import Corpus, CorpusSpec

V = 256


def load(spec, vocab_size=V, max_len=64, tokenize=None, corpus=None, **request):
    return load_eval_set(
        EvalRequest(str(spec), **request), vocab_size=vocab_size, max_len=max_len, tokenize=tokenize, corpus=corpus
    )


def test_toy_default_is_heldout_and_deterministic():
    a = load("toy", n_items=8, item_len=32, seed=5)
    b = load("toy", n_items=8, item_len=32, seed=5)
    assert a.hash == b.hash and len(a.items) == 8 and all(x.size == 32 for x in a.items)
    assert a.hash != load("toy", n_items=8, item_len=32, seed=6).hash
    assert a.name == "toy_heldout_s5"
    # drawn from the corpus' own Markov chain: every transition has positive probability
    corpus = Corpus(CorpusSpec())
    for x in a.items:
        assert (corpus.transition[x[:-1], x[1:]] > 0).all()


@pytest.mark.parametrize("item_len", [0, 4, 17, 32, 64])
def test_toy_repeats_are_a_segment_and_its_repeat(item_len):
    es = load("toy_repeats", n_items=6, item_len=item_len, seed=3)
    length = item_len or 32
    half = (length + 1) // 2
    assert es.name == "toy_repeats_s3" and len(es.items) == 6
    for x in es.items:
        assert x.size == length and (x[half:] == x[: length - half]).all()
        assert ((x >= 0) & (x < V)).all()
    assert es.hash == load("toy_repeats", n_items=6, item_len=item_len, seed=3).hash
    assert es.hash != load("toy_repeats", n_items=6, item_len=item_len, seed=4).hash
    assert es.hash != load("toy", n_items=6, item_len=length, seed=3).hash
    with pytest.raises(TdwError, match="toy_repeats needs item_len >= 4"):
        load("toy_repeats", n_items=2, item_len=3)


def test_hash_depends_on_boundaries():
    from ingest.evalsets import EvalSet

    a = EvalSet("a", "s", (np.array([1, 2, 3]), np.array([4, 5])))
    b = EvalSet("a", "s", (np.array([1, 2]), np.array([3, 4, 5])))
    assert a.hash != b.hash


def test_token_files(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("1 2 3 4\n\n5,6,7\n")
    es = load(p)
    assert [x.tolist() for x in es.items] == [[1, 2, 3, 4], [5, 6, 7]] and es.name == "ids.txt"
    n = tmp_path / "ids.npy"
    np.save(n, np.arange(10, dtype=np.int32).reshape(2, 5))
    assert [x.tolist() for x in load(n).items] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    np.save(n, np.arange(10, dtype=np.int64))
    assert [x.size for x in load(n, item_len=4).items] == [4, 4, 2]


def test_long_items_are_windowed_not_dropped(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text(" ".join(map(str, range(25))) + "\n")
    es = load(p, max_len=10)
    assert [x.size for x in es.items] == [10, 10, 5]
    assert np.concatenate(es.items).tolist() == list(range(25))
    assert len(load(p, max_len=10, max_items=2).items) == 2


def test_text_file_uses_tokenizer_or_bytes(tmp_path):
    p = tmp_path / "sents.txt"
    p.write_text("hello world\nthe cat sat\n")
    es = load(p, tokenize=byte_tokenizer)
    assert bytes(es.items[0].tolist()) == b"hello world"
    es = load(p, tokenize=lambda t: [len(w) for w in t.split()])
    assert [x.tolist() for x in es.items] == [[5, 5], [3, 3, 3]]
    with pytest.raises(TdwError, match="no tokenizer"):
        load(p, tokenize=None)
    j = tmp_path / "d.jsonl"
    j.write_text(json.dumps({"text": "ab"}) + "\n" + json.dumps("cd") + "\n")
    assert [bytes(x.tolist()) for x in load(j, tokenize=byte_tokenizer).items] == [b"ab", b"cd"]
    t = tmp_path / "forced.txt"
    t.write_text("1 2 3\n")
    assert bytes(load(f"text:{t}", tokenize=byte_tokenizer).items[0].tolist()) == b"1 2 3"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"  \n\n ", "is empty"),
        (b"abc\x00def\n", "not a text file"),
        (b"\xff\xfe\xfa binary", "not a UTF-8 text file"),
        (b"1 2 3\n4 999 5\n", "token id 999 outside"),
        (b"1 2 -3\n", "token id -3 outside"),
    ],
)
def test_bad_text_files(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(TdwError, match=message):
        load(p, tokenize=byte_tokenizer)


def test_bad_token_inputs(tmp_path):
    n = tmp_path / "x.npy"
    np.save(n, np.array([[1, 2], [3, 300]]))
    with pytest.raises(TdwError, match="token id 300 outside"):
        load(n)
    np.save(n, np.array([0.5, 1.5]))
    with pytest.raises(TdwError, match="must be integers"):
        load(n)
    np.save(n, np.zeros((0,), dtype=np.int64))
    with pytest.raises(TdwError, match="is empty"):
        load(n)
    np.save(n, np.zeros((2, 2, 2), dtype=np.int64))
    with pytest.raises(TdwError, match="1-D or 2-D"):
        load(n)
    n.write_bytes(b"not numpy at all")
    with pytest.raises(TdwError, match="not a readable .npy"):
        load(n)
    t = tmp_path / "t.txt"
    t.write_text("1 2 3\nfoo\n")
    with pytest.raises(TdwError, match="line 2 is not a list of integer ids"):
        load(f"tokens:{t}")
    t.write_text("7\n8\n")
    with pytest.raises(TdwError, match="no item of at least 2 tokens"):
        load(t)
    with pytest.raises(TdwError, match="not found"):
        load(tmp_path / "missing.txt")
    j = tmp_path / "d.jsonl"
    j.write_text('{"title": "x"}\n')
    with pytest.raises(TdwError, match="no string 'text'"):
        load(j, tokenize=byte_tokenizer)


def test_tokenizer_output_is_vocab_checked(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("héllo\n")  # UTF-8 bytes above 127
    with pytest.raises(TdwError, match="outside the model's vocabulary"):
        load(p, vocab_size=128, tokenize=byte_tokenizer)


def test_toy_items_shape():
    x = toy_items({"vocab_size": 64, "seq_len": 16}, 3, 0, 1)
    assert len(x) == 3 and all(v.size == 16 and v.max() < 64 for v in x)
