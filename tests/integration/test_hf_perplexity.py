"""``--param perplexity.dataset=hf:...`` end to end: a Hugging Face ``datasets`` split saved
locally (no hub) measured by the perplexity probe on a tiny GPT-NeoX."""

from __future__ import annotations

import pytest

from ingest.errors import TdwError

datasets = pytest.importorskip("datasets")

TEXTS = [f"item {i}: the cat sat on mat {i}" for i in range(12)]


@pytest.mark.slow  # ingests with the perplexity probe on a datasets split
def test_perplexity_ingest_with_an_hf_dataset(tmp_path, monkeypatch):
    """``--param perplexity.dataset=hf:...`` end to end on a tiny byte-vocabulary GPT-NeoX:
    the stored evaluation set is the dataset's first rows as bytes; a bad spec fails in one
    line before any job (no warehouse file is written)."""
    import duckdb
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from tests.faults.tinymodel import SMALL
    from warehouse.pipeline import ingest

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    saved = tmp_path / "hf"
    d = datasets.Dataset.from_dict({"sentence": TEXTS, "n": list(range(12))})
    datasets.DatasetDict({"test": d}).save_to_disk(str(saved / "dict"))
    run = tmp_path / "run"
    torch.manual_seed(0)
    GPTNeoXForCausalLM(GPTNeoXConfig(**{**SMALL, "vocab_size": 256})).save_pretrained(run / "step0")
    wh = tmp_path / "wh" / "warehouse.duckdb"
    spec = f"hf:{saved / 'dict'}::test:sentence"
    params = {"perplexity": {"dataset": spec, "max_items": 4, "methods": "forward", "device": "cpu"}}
    with pytest.raises(TdwError, match="no column 'nope'"):
        ingest(
            str(run),
            probes="perplexity",
            warehouse=wh,
            progress=False,
            params={"perplexity": {**params["perplexity"], "dataset": spec.replace("sentence", "nope")}},
        )
    assert not wh.exists()
    res = ingest(str(run), probes="perplexity", warehouse=wh, progress=False, params=params)
    assert res.ok and len(res.done) == 1
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute("SELECT dataset, spec, token_ids FROM raw.eval_sets ORDER BY item").fetchall()
    ((name, n),) = con.execute("SELECT dataset, n_items FROM raw.perplexity").fetchall()
    con.close()
    assert name == "dict:test" and n == 4
    assert [r[2] for r in rows] == [list(t.encode()) for t in TEXTS[:4]]
    assert {r[0] for r in rows} == {"dict:test"} and {r[1] for r in rows} == {spec}
