"""Ingest end to end on synthetic local checkpoints: idempotency, skipping, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tdw.cli import main
from warehouse.pipeline import ingest

TABLES = ("weight_stats", "weight_hist", "weight_sample")


def snapshot(wh: Path) -> dict:
    """Every raw table's rows (ordered) plus the manifest's job list."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        out = {t: con.execute(f"select * from raw.{t} order by all").fetchall() for t in TABLES}
        out["runs"] = con.execute(
            "select model_id, step, probe, status, error from raw.ingest_runs order by all"
        ).fetchall()
        return out
    finally:
        con.close()


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_ingest_twice_gives_identical_tables_and_skips(make_checkpoints, tmp_path):
    root, _ = make_checkpoints()
    wh = tmp_path / "w.duckdb"
    first = ingest(str(root), warehouse=wh, probes="weights", progress=False)
    assert first.ok and len(first.done) == 6 and not first.skipped
    before = snapshot(wh)
    second = ingest(str(root), warehouse=wh, probes="weights", progress=False)
    assert len(second.skipped) == 6 and not second.done
    assert snapshot(wh) == before
    forced = ingest(str(root), warehouse=wh, probes="weights", force=True, progress=False)
    assert len(forced.done) == 6
    after = snapshot(wh)
    assert {t: after[t] for t in TABLES} == {t: before[t] for t in TABLES}
    assert len(after["runs"]) == 12


def test_changed_checkpoint_is_reingested(make_checkpoints, tmp_path):
    root, _ = make_checkpoints(steps=(0, 1))
    wh = tmp_path / "w.duckdb"
    ingest(str(root), warehouse=wh, probes="weights", progress=False)
    make_checkpoints(steps=(0, 1), seed=7)  # same folder, new content
    again = ingest(str(root), warehouse=wh, probes="weights", progress=False)
    assert len(again.done) == 2


def test_batch_goes_on_past_a_truncated_checkpoint(make_checkpoints, tmp_path):
    root, _ = make_checkpoints(steps=(0, 1, 2))
    f = root / "step1" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    wh = tmp_path / "w.duckdb"
    code, out = run_cli("ingest", str(root), "--warehouse", str(wh), "--probes", "weights")
    assert code == 1 and "1 failed" in out and "truncated" in out
    runs = snapshot(wh)["runs"]
    assert [(r[1], r[3]) for r in runs] == [(0, "success"), (1, "failed"), (2, "success")]
    assert "truncated" in runs[1][4]
    assert {r[1] for r in snapshot(wh)["weight_stats"]} == {0, 2}


@pytest.mark.parametrize(
    "args, message",
    [
        (["no/such-model-dir-xyz"], "cannot list revisions"),
        (["./does-not-exist"], "no such model"),
        (["toy/nope"], "toy model 'toy/nope' not found"),
        (["{root}", "--revisions", "step999"], "not found: step999"),
        (["{root}", "--revisions", "step1:"], "malformed revision range"),
        (["{root}", "--tensors", "*.nothing.*"], "matches no tensor"),
        (["{root}", "--probes", "nosuchprobe"], "unknown probe"),
        (["{root}", "--param", "weights.bogus=1"], "has no parameter 'bogus'"),
        (["{root}", "--warehouse", "{notdb}"], "not a DuckDB file"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(make_checkpoints, tmp_path, args, message):
    root, _ = make_checkpoints(steps=(0, 1))
    wh = tmp_path / "w.duckdb"
    ingest(str(root), warehouse=wh, probes="weights", progress=False)
    before = snapshot(wh)
    notdb = tmp_path / "notes.txt"
    notdb.write_text("not a database " * 20)
    args = [a.format(root=root, notdb=notdb) for a in args]
    if "--warehouse" not in args:
        args += ["--warehouse", str(wh)]
    code, out = run_cli("ingest", *args)
    assert code == 1, out
    assert out.startswith("error: ") and message in out and out.count("\n") == 1, out
    assert snapshot(wh) == before
    assert notdb.read_text() == "not a database " * 20


def test_real_process_prints_no_traceback(tmp_path):
    tdw = Path(sys.executable).parent / "tdw"
    proc = subprocess.run(
        [str(tdw), "sql", "select 1", "--warehouse", str(tmp_path / "missing.duckdb")], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no warehouse at") and "Traceback" not in proc.stderr


def test_sql_refuses_writes(make_checkpoints, tmp_path):
    root, _ = make_checkpoints(steps=(0,))
    wh = tmp_path / "w.duckdb"
    ingest(str(root), warehouse=wh, probes="weights", progress=False)
    code, out = run_cli("sql", "delete from raw.weight_stats", "--warehouse", str(wh))
    assert code == 1 and "read-only" in out
    code, out = run_cli("sql", "select count(*) as n from raw.weight_stats", "--warehouse", str(wh), "--format", "csv")
    assert code == 0 and out.strip() == "n\n2"  # unembedding and embedding
