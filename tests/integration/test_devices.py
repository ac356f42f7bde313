"""--device and --dtype: resolved once, applied to the probes that run the model, stored in
every job's parameters; bfloat16 moves the measures a little, and says so in the lineage."""

from __future__ import annotations

import json

import duckdb
import pytest

from ingest import devices
from ingest.errors import TdwError
from warehouse.pipeline import ingest


def test_resolve_device_without_a_gpu():
    assert devices.resolve_device("auto", have_gpu=False) == "cpu"
    assert devices.resolve_device("auto", have_gpu=True) == "cuda"
    assert devices.resolve_device("cuda:1", have_gpu=True) == "cuda:1"
    with pytest.raises(TdwError, match="no CUDA GPU"):
        devices.resolve_device("cuda", have_gpu=False)
    with pytest.raises(TdwError, match="unknown device"):
        devices.resolve_device("tpu")


def test_apply_respects_explicit_probe_parameters():
    params = {
        "graph": {"device": "auto", "dtype": "float32"},
        "weights": {"tensors": "unembed"},
        "perplexity": {"device": "auto", "dtype": "float32"},
    }
    defaults = {k: dict(v) for k, v in params.items()}
    devices.apply(params, defaults, {"perplexity": {"dtype": "float32"}}, "cpu", "bfloat16")
    assert params["graph"] == {"device": "cpu", "dtype": "bfloat16"}
    assert params["perplexity"] == {"device": "cpu", "dtype": "float32"}  # --param wins
    assert params["weights"] == {"tensors": "unembed"}  # no model, no device
    with pytest.raises(TdwError, match="unknown dtype"):
        devices.apply(params, defaults, {}, "cpu", "int8")


def test_bfloat16_is_recorded_and_close_to_float32(toy_suite, tmp_path):
    runs = {}
    for dtype in ("float32", "bfloat16"):
        wh = tmp_path / f"{dtype}.duckdb"
        result = ingest(
            "toy/neox-2l",
            revisions="step1024",
            probes="perplexity",
            warehouse=wh,
            toy_root=toy_suite,
            progress=False,
            dtype=dtype,
            device="auto",
        )
        assert result.ok, result.summary()
        con = duckdb.connect(str(wh), read_only=True)
        params = json.loads(con.execute("SELECT params FROM raw.ingest_runs").fetchone()[0])
        ppl = con.execute("SELECT perplexity FROM raw.perplexity WHERE method='forward'").fetchone()[0]
        con.close()
        assert params["dtype"] == dtype and params["device"] == "cpu"
        runs[dtype] = ppl
    assert runs["bfloat16"] != runs["float32"]  # it does change the measure
    assert abs(runs["bfloat16"] / runs["float32"] - 1) < 0.05  # but only a little
