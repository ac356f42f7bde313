"""Revision naming: presets, --revision-pattern, Trainer output directories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import TdwError
from ingest.revisions import PRESETS, Naming, parse_spec
from ingest.sources import checkpoints, open_source

FORMATS = {
    "pythia": "step{s}",
    "olmo": "step{s}-tokens{t}B",
    "olmo2": "stage1-step{s}-tokens{t}B",
    "llm360": "ckpt_{s:03d}",
    "trainer": "checkpoint-{s}",
}


@settings(max_examples=60, deadline=None)
@given(preset=st.sampled_from(sorted(FORMATS)), step=st.integers(0, 10**12), tokens=st.integers(0, 10**4))
def test_every_preset_names_its_step(preset, step, tokens):
    name = FORMATS[preset].format(s=step, t=tokens)
    assert Naming(preset).match(name)[0] == step
    assert Naming().match(name)[0] == step  # the default tries every preset
    if "tokens" in FORMATS[preset]:
        assert Naming().match(name)[1] == tokens * 10**9


@pytest.mark.parametrize("name", ["main", "step", "step1x", "ckpt_", "checkpoint-", "step١٢", "stage2-step1-tokens2B"])
def test_non_checkpoint_names_do_not_match(name):
    assert Naming().match(name) is None


def test_custom_pattern_and_its_errors():
    n = Naming(r"run-(?P<step>\d+)-of-9")
    assert n.match("run-42-of-9") == (42, None)
    assert parse_spec("run-4-of-9,7", n) == [4, 7]
    assert parse_spec("run-2-of-9:run-6-of-9:2", n) == [2, 4, 6]
    with pytest.raises(TdwError, match="no named group 'step'"):
        Naming(r"run-(\d+)")
    with pytest.raises(TdwError, match="not a valid regex"):
        Naming(r"run-(?P<step>\d+")
    with pytest.raises(TdwError, match="matches no revision pattern"):
        parse_spec("ckpt_4", n)
    assert set(PRESETS) == set(FORMATS)


def _series(root: Path, names: list[str], trainer: bool = False) -> Path:
    from tests.faults.tinymodel import make_suite

    made = make_suite(root / "_made", steps=range(len(names)))
    for i, name in enumerate(names):
        (made / f"step{i}").rename(root / name)
        if trainer:
            (root / name / "trainer_state.json").write_text(json.dumps({"global_step": i, "log_history": []}))
    (made).rmdir()
    (root / "runs").mkdir()  # Trainer's tensorboard dir: not a checkpoint
    return root


def test_trainer_output_and_llm360_folders(tmp_path):
    trainer = _series(tmp_path / "out", ["checkpoint-500", "checkpoint-1000", "checkpoint-1500"], trainer=True)
    src = open_source(str(trainer))
    assert src.is_trainer_output()
    assert checkpoints(src, "all") == [500, 1000, 1500]
    assert checkpoints(src, "checkpoint-500:checkpoint-1500:1000") == [500, 1500]
    assert src.checkpoint(1000).revision == "checkpoint-1000"
    assert src.checkpoint(1000).tensors().names()
    amber = _series(tmp_path / "amber", ["ckpt_000", "ckpt_001", "ckpt_002"])
    assert checkpoints(open_source(str(amber), revision_pattern="llm360"), "1:2") == [1, 2]
    with pytest.raises(TdwError, match="no checkpoint directories"):
        open_source(str(amber), revision_pattern="trainer").steps()


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_cli_ingests_a_trainer_directory_and_refuses_bad_patterns(tmp_path):
    out = _series(tmp_path / "out", ["checkpoint-10", "checkpoint-20"], trainer=True)
    wh = tmp_path / "wh" / "w.duckdb"
    tdw = [sys.executable, "-c", "from tdw.cli import main; main()"]
    ok = subprocess.run(
        tdw + ["ingest", str(out), "--probes", "weights", "--warehouse", str(wh)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    import duckdb

    con = duckdb.connect(str(wh), read_only=True)
    assert sorted({r[0] for r in con.execute("SELECT step FROM raw.ingest_runs").fetchall()}) == [10, 20]
    con.close()
    for pattern, msg in [(r"checkpoint-(\d+)", "no named group 'step'"), ("(?P<step>", "not a valid regex")]:
        bad = subprocess.run(
            tdw + ["ingest", str(out), "--revision-pattern", pattern, "--warehouse", str(wh)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert bad.returncode != 0 and msg in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(
        tdw + ["ingest", str(out), "--revision-pattern", "trainer", "--revisions", "ckpt_3", "--warehouse", str(wh)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "matches no revision pattern" in bad.stderr and "Traceback" not in bad.stderr


def test_toy_trainer_writes_trainer_state_logs(tmp_path):
    from ingest.toy.train import ToyModel, TrainSpec, _train_one
    from ingest.traininglog import read_log

    spec = TrainSpec(total_steps=6, every=4, batch_size=2, warmup=3)
    _train_one(ToyModel("tiny", 1, 16, 2, seed=0), spec, tmp_path, None)
    from ingest.toy.train import schedule

    last = max(schedule(6, 4))
    final = read_log(tmp_path / "tiny" / f"step{last}")
    assert sorted(set(final["metric"])) == ["learning_rate", "loss"]
    assert final[final.metric == "learning_rate"]["value"].tolist() == pytest.approx(
        [spec.lr * (s + 1) / 3 for s in range(3)] + final[final.metric == "learning_rate"]["value"].tolist()[3:]
    )
    assert final["log_step"].max() == last and len(read_log(tmp_path / "tiny" / "step4")) == 2 * 4
    assert read_log(tmp_path / "tiny" / "step0").empty


def test_ingest_records_the_series_revision_name_and_its_tokens(tmp_path):
    import duckdb

    from warehouse.pipeline import ingest

    olmo = _series(tmp_path / "olmo", ["step10-tokens42B", "step20-tokens84B"])
    wh = tmp_path / "w.duckdb"
    assert ingest(str(olmo), warehouse=wh, probes="weights", progress=False).ok
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute("SELECT step, revision, tokens_seen FROM raw.ingest_runs ORDER BY step").fetchall()
    con.close()
    assert rows == [(10, "step10-tokens42B", 42 * 10**9), (20, "step20-tokens84B", 84 * 10**9)]
