"""``hf:`` evaluation sets through Hugging Face ``datasets``, offline: a folder written by
``save_to_disk``, a folder of data files, and a hub-named dataset that only the ``datasets``
cache holds (built by the real builder into the cache's own layout, the hub unreachable)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ingest.errors import TdwError
from ingest.evalsets import EvalRequest, load_eval_set
from ingest.hfdatasets import parse_hf
from ingest.tokenizers import byte_tokenize

datasets = pytest.importorskip("datasets")

TEXTS = [f"item {i}: the cat sat on mat {i}" for i in range(12)]


def load(spec, **request):
    return load_eval_set(EvalRequest(spec, **request), vocab_size=256, max_len=64, tokenize=byte_tokenize)


def expected(texts):
    return [np.frombuffer(t.encode(), dtype=np.uint8).astype(np.int64) for t in texts]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    d = datasets.Dataset.from_dict({"sentence": TEXTS, "n": list(range(12))})
    datasets.DatasetDict({"test": d, "train": d.select(range(3))}).save_to_disk(str(root / "dict"))
    d.save_to_disk(str(root / "one"))
    files = root / "files"
    files.mkdir()
    (files / "test.jsonl").write_text("\n".join(json.dumps({"text": t, "n": i}) for i, t in enumerate(TEXTS)))
    return root


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No hub, and a private datasets cache (loading a folder of files writes to it)."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture()
def offline_cache(tmp_path):
    """``tiny/lambada_tiny`` (config ``plain``) as the datasets cache holds a hub dataset
    loaded once: written by the real json builder, moved into ``<ns>___<name>/<config>/``."""
    from datasets.packaged_modules.json.json import Json

    src = tmp_path / "test.jsonl"
    src.write_text("\n".join(json.dumps({"text": t}) for t in TEXTS))
    cache = tmp_path / "cache"
    b = Json(
        cache_dir=str(tmp_path / "build"),
        dataset_name="lambada_tiny",
        config_name="plain",
        hash="abc123",
        data_files={"test": [str(src)]},
    )
    b.download_and_prepare()
    (cache / "tiny___lambada_tiny").mkdir(parents=True)
    shutil.move(b.cache_dir.rsplit("/0.0.0", 1)[0], cache / "tiny___lambada_tiny" / "plain")
    return cache


def test_parse_positions():
    assert parse_hf("hf:a/b:test") == ("a/b", None, "test", None)
    assert parse_hf("hf:a/b:en:test") == ("a/b", "en", "test", None)
    assert parse_hf("hf:a/b::test:text") == ("a/b", None, "test", "text")
    assert parse_hf("hf:a/b:en:test:text") == ("a/b", "en", "test", "text")


@pytest.mark.parametrize("spec", ["hf:", "hf:a", "hf::test", "hf:a:", "hf:a:b:c:d:e", "hf:a:en::text"])
def test_malformed_specs_are_one_line(spec):
    with pytest.raises(TdwError, match="malformed dataset spec") as e:
        load(spec)
    assert "\n" not in str(e.value)


def test_saved_dataset_dict_split_and_column(saved):
    es = load(f"hf:{saved / 'dict'}::test:sentence")
    assert [x.tolist() for x in es.items] == [x.tolist() for x in expected(TEXTS)]
    assert es.name == "dict:test"
    # max_items: only the first rows (the paper: LAMBADA's first 500 test items)
    assert [x.tolist() for x in load(f"hf:{saved / 'dict'}::test:sentence", max_items=5).items] == [
        x.tolist() for x in expected(TEXTS[:5])
    ]
    # the only string column is found without naming it
    assert load(f"hf:{saved / 'one'}:test").hash == es.hash


def test_data_file_folder_through_load_dataset(saved):
    es = load(f"hf:{saved / 'files'}:test")
    assert [x.tolist() for x in es.items] == [x.tolist() for x in expected(TEXTS)]


def test_hub_dataset_from_the_cache_offline(offline_cache):
    es = load("hf:tiny/lambada_tiny:plain:test", max_items=3)
    assert es.name == "tiny/lambada_tiny:plain:test"
    assert [x.tolist() for x in es.items] == [x.tolist() for x in expected(TEXTS[:3])]
    assert load("hf:tiny/lambada_tiny:test", max_items=3).hash == es.hash  # the one cached config


@pytest.mark.parametrize(
    "spec, says",
    [
        ("hf:nobody/no_such_dataset:test", "not found"),
        ("hf:tiny/lambada_tiny:other:test", "config 'other'; Available configs in the cache: ['plain']"),
        ("hf:tiny/lambada_tiny:plain:validation", "validation"),
        ("hf:tiny/lambada_tiny:plain:test:sentence", "no column 'sentence' (columns: text)"),
    ],
)
def test_bad_hub_specs_are_one_line(offline_cache, spec, says):
    with pytest.raises(TdwError) as e:
        load(spec)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_bad_local_specs_are_one_line(saved):
    for spec, says in [
        (f"hf:{saved / 'dict'}:validation", "no split 'validation' (splits: test, train)"),
        (f"hf:{saved / 'dict'}::test:n", "does not hold text"),
        (f"hf:{saved / 'dict'}::test:nope", "no column 'nope'"),
    ]:
        with pytest.raises(TdwError) as e:
            load(spec)
        assert says in str(e.value) and "\n" not in str(e.value)
