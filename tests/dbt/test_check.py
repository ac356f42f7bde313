"""`tdw check` on a warehouse holding failed jobs (a bad file, a job the quality gate
failed) and non-finite weights."""

from __future__ import annotations

import duckdb
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from tdw.cli import main
from tests.conftest import write_checkpoints
from warehouse.dbt import build
from warehouse.pipeline import ingest

SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}


def test_check_reports_failed_jobs_nonfinite_inputs_and_lineage(tmp_path, monkeypatch):
    root = tmp_path / "run"
    write_checkpoints(root, [0, 1, 2, 3], SHAPES)
    tensors = load_file(str(root / "step1" / "model.safetensors"))
    tensors["embed_out.weight"][0, 0] = float("nan")
    save_file(tensors, str(root / "step1" / "model.safetensors"))
    (root / "step2" / "config.json").unlink()
    wh = tmp_path / "w.duckdb"
    monkeypatch.setenv("TDW_FAULT_CORRUPT", "weights:weight_hist:negative:count@3")
    result = ingest(str(root), warehouse=wh, probes="weights", progress=False)
    assert [f[0] for f in result.failed] == [2, 3]
    build(wh)
    out = CliRunner().invoke(main, ["check", "--warehouse", str(wh)])
    assert out.exit_code == 1, out.output
    assert "dbt tests: all passed" in out.output
    assert "step2 weights: failed_job:" in out.output and "missing config.json" in out.output
    assert "step1 weights: nonfinite_input: 1 of 1024 values" in out.output
    assert "quality gate: 1 jobs failed it: weight_hist: expect_columns_values_to_be_between(count) (1)" in out.output
    con = duckdb.connect(str(wh), read_only=True)
    lineage = con.execute("select step, content_hash, probe_version from marts.dim_probe_run order by step").fetchall()
    hashes = dict(con.execute("select step, content_hash from raw.ingest_runs where status = 'success'").fetchall())
    flagged = con.execute(
        "select step, kind, failed_expectations from marts.fct_data_quality where kind = 'failed_job' order by step"
    ).fetchall()
    con.close()
    assert flagged == [
        (2, "failed_job", None),
        (3, "failed_job", '["weight_hist: expect_columns_values_to_be_between(count)"]'),
    ]
    assert [(s, h) for s, h, _ in lineage] == sorted(hashes.items()) and {v for *_, v in lineage} == {"2"}
    assert torch.isnan(tensors["embed_out.weight"]).sum() == 1
