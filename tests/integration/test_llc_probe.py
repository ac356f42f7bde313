"""The llc probe through the pipeline on a tiny real GPT-NeoX suite: a step size far too
large is a failed job with a one-line reason and no rows (never a NaN), a data set too small
for the batch is refused before any job, and a sound run loads one summary row and a row per
chain whose estimates agree with the summary."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from ingest.errors import TdwError
from tests.faults.tinymodel import make_suite
from warehouse.pipeline import ingest


@pytest.fixture
def suite(tmp_path):
    root = make_suite(tmp_path / "run", steps=(0, 1))
    ids = np.random.default_rng(0).integers(0, 64, size=(16, 16))  # [items, tokens]
    np.save(tmp_path / "ids.npy", ids)
    return root, str(tmp_path / "ids.npy")


def run(root, wh, ids, **llc):
    params = {"eval_set": ids, "chains": 2, "draws": 5, "batch_size": 4, **llc}
    return ingest(str(root), probes="llc", params={"llc": params}, warehouse=wh, progress=False, device="cpu")


def test_sound_run_loads_summary_and_chains(suite, tmp_path):
    root, ids = suite
    wh = tmp_path / "w.duckdb"
    assert run(root, wh, ids).ok
    con = duckdb.connect(str(wh), read_only=True)
    summary = con.execute("select step, n_chains, n_diverged, llc_mean, llc_std from raw.llc order by step").fetchall()
    chains = con.execute(
        "select step, avg(llc), stddev_samp(llc), count(*) from raw.llc_chains group by 1 order by 1"
    ).fetchall()
    con.close()
    assert [s[:3] for s in summary] == [(0, 2, 0), (1, 2, 0)]
    for (_, _, _, mean, std), (_, cmean, cstd, n) in zip(summary, chains):
        assert n == 2 and mean == pytest.approx(cmean) and std == pytest.approx(cstd)


def test_a_step_size_far_too_large_fails_each_job_with_one_line(suite, tmp_path):
    root, ids = suite
    wh = tmp_path / "w.duckdb"
    result = run(root, wh, ids, epsilon=1000.0)
    assert [p for _, p, _ in result.failed] == ["llc", "llc"]
    for _, _, err in result.failed:
        assert "diverged in all 2 chains" in err and "lower epsilon" in err and "\n" not in err
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select count(*) from raw.llc").fetchone()[0] == 0
    con.close()


def test_too_little_data_for_the_batch_is_refused_before_any_job(suite, tmp_path):
    root, ids = suite
    wh = tmp_path / "w.duckdb"
    with pytest.raises(TdwError, match="16 sequences, fewer than batch_size 32"):
        run(root, wh, ids, batch_size=32)
    assert not wh.exists() or duckdb.connect(str(wh)).execute(
        "select count(*) from information_schema.tables where table_name = 'ingest_runs'"
    ).fetchone()[0] in (0, 1)
