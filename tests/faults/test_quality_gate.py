"""The data-quality gate (warehouse/quality.py) on real probe output.

Every probe's real frames from the toy suite pass its expectations, and every table of
every probe is gated (a repeated key row in any one table fails the job, naming that
table). Through the real pipeline, a corrupted frame (``TDW_FAULT_CORRUPT``: a repeated
key, a NULL key, a negative count, an infinite or out-of-range value, a forbidden edge)
fails that job only: it is recorded as failed with the expectation named in
``raw.ingest_runs.failed_expectations``, none of its rows are committed, and the other
job of the same batch commits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ingest.probes import PROBES, get_probes
from ingest.sources import open_source
from tests.conftest import write_checkpoints
from warehouse.pipeline import ingest
from warehouse.quality import QualityError, validate_job

TDW = str(Path(sys.executable).parent / "tdw")
MODEL = "toy/neox-2l"


def schedule(toy_suite: Path) -> list[int]:
    return json.loads((toy_suite / MODEL.split("/")[1] / "suite.json").read_text())["schedule"]


@pytest.fixture(scope="module")
def real_frames(toy_suite) -> dict[str, dict[str, pd.DataFrame]]:
    """Every probe's frames at a trained checkpoint (the displacement probe's against the one
    before it)."""
    src = open_source(MODEL, toy_root=toy_suite)
    steps = schedule(toy_suite)[-2:]
    out = {}
    for probe in get_probes(None):
        params = probe.params()
        frames = probe.run(src.checkpoint(steps[-1]), params, probe.context(src, steps, params))
        out[probe.name] = frames
    return out


@pytest.mark.parametrize("name", sorted(PROBES))
def test_real_frames_pass_and_every_table_is_gated(real_frames, name):
    probe, frames = PROBES[name](), real_frames[name]
    assert set(frames) == {t.name for t in probe.tables} and all(len(f) for f in frames.values())
    validate_job(probe, frames)  # the real output passes
    for t in probe.tables:
        bad = {**frames, t.name: pd.concat([frames[t.name], frames[t.name].iloc[:1]], ignore_index=True)}
        bad[t.name].attrs = frames[t.name].attrs
        with pytest.raises(QualityError) as err:
            validate_job(probe, bad)
        assert err.value.expectations == [f"{t.name}: expect_compound_key_to_be_unique({', '.join(t.key)})"]


def test_graph_edges_must_be_edges_the_architecture_allows(real_frames):
    probe, frames = PROBES["graph"](), real_frames["graph"]
    edges = frames["graph_edges"].copy()
    edges.loc[0, ["src", "dst"]] = ["logits", "embed"]  # backwards: not a readable edge
    edges.attrs = frames["graph_edges"].attrs
    with pytest.raises(QualityError, match=r"graph_edges: expect_column_pair_values_to_be_in_set\(src, dst\)"):
        validate_job(probe, {**frames, "graph_edges": edges})


def test_null_columns_by_design_pass_but_values_out_of_range_fail(real_frames):
    """Non-finite weights leave the covariance trace NULL (recorded, not fatal); a negative
    trace or an infinite mean is a bug and fails."""
    cov, frames = PROBES["covariance"](), real_frames["covariance"]
    eigs = frames["covariance_eigs"].assign(trace=None, eigenvalues=None, n_nonfinite=3)
    validate_job(cov, {"covariance_eigs": eigs})
    with pytest.raises(QualityError) as err:
        validate_job(cov, {"covariance_eigs": frames["covariance_eigs"].assign(trace=-1.0, d=0)})
    assert err.value.expectations == ["covariance_eigs: expect_columns_values_to_be_between(d, trace)"]
    w, wf = PROBES["weights"](), real_frames["weights"]
    stats = wf["weight_stats"].copy()
    stats.loc[0, "mean"], stats.loc[1, "frac_near_zero"] = float("inf"), 1.5
    with pytest.raises(
        QualityError, match=r"weight_stats: expect_columns_values_to_be_between\(mean, frac_near_zero\)$"
    ):
        validate_job(w, {**wf, "weight_stats": stats})


CASES = [  # probe, corruption, the expectation named
    ("weights", "weight_hist:negative:count", "weight_hist: expect_columns_values_to_be_between(count)"),
    ("perplexity", "perplexity:negative:perplexity", "perplexity: expect_columns_values_to_be_between(perplexity)"),
    (
        "covariance",
        "covariance_eigs:duplicate",
        "covariance_eigs: expect_compound_key_to_be_unique(model_id, step, tensor_name, batch_size, seed)",
    ),
    ("displacement", "displacement:inf:disp", "displacement: expect_columns_values_to_be_between(disp)"),
    ("graph", "graph_edges:swap:src+dst", "graph_edges: expect_column_pair_values_to_be_in_set(src, dst)"),
    ("residual", "residual_pca:null:component", "residual_pca: expect_columns_to_not_be_null(component)"),
]


def table_counts(wh: Path, probe: str) -> dict[tuple[str, int], int]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return {
            (t.name, s): n
            for t in PROBES[probe].tables
            for s, n in con.execute(f'select step, count(*) from raw."{t.name}" group by step').fetchall()
        }
    finally:
        con.close()


@pytest.mark.parametrize("probe, corruption, expected", CASES, ids=[c[0] for c in CASES])
def test_corrupted_job_fails_alone_through_the_pipeline(toy_suite, tmp_path, monkeypatch, probe, corruption, expected):
    first, second = schedule(toy_suite)[-2:]
    monkeypatch.setenv("TDW_FAULT_CORRUPT", f"{probe}:{corruption}@{second}")
    wh = tmp_path / "w.duckdb"
    result = ingest(
        MODEL, revisions=f"step{first},step{second}", probes=probe, warehouse=wh, toy_root=toy_suite, progress=False
    )
    assert [(s, p) for s, p, _ in result.failed] == [(second, probe)]
    assert expected in result.failed[0][2] and "\n" not in result.failed[0][2]
    con = duckdb.connect(str(wh), read_only=True)
    runs = con.execute("select step, status, failed_expectations from raw.ingest_runs order by step").fetchall()
    con.close()
    assert runs[0][:2] == (first, "success") and runs[0][2] is None
    assert runs[1][:2] == (second, "failed") and json.loads(runs[1][2]) == [expected]
    counts = table_counts(wh, probe)
    assert not any(s == second for _, s in counts)  # nothing of the failed job
    if probe != "displacement":  # (no earlier step: no rows)
        assert {t for t, s in counts if s == first} == {t.name for t in PROBES[probe].tables}


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_cli_reports_the_gate_and_exits_1(tmp_path):
    root = tmp_path / "run"
    write_checkpoints(root, [0, 1, 2], {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)})
    wh = tmp_path / "w.duckdb"
    env = {**os.environ, "TDW_FAULT_CORRUPT": "weights:weight_stats:null:tensor_name@1"}
    proc = subprocess.run(
        [TDW, "ingest", str(root), "--probes", "weights", "--warehouse", str(wh)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert (
        "failed step1 weights: weights data-quality gate failed (1): weight_stats: "
        "expect_columns_to_not_be_null(tensor_name)" in proc.stdout
    )
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select distinct step from raw.weight_hist order by 1").fetchall() == [(0,), (2,)]
    con.close()
