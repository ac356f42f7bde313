"""Live ingest during a real ``transformers.Trainer`` run (a tiny GPT-NeoX on CPU).

One training run (40 steps, a checkpoint every 10) feeds two warehouses at once: the
``TdwCallback`` hands each save to its background worker, and ``tdw watch`` runs as a
subprocess on the same output directory and is stopped with SIGINT while it works. The
tests then check, against the checkpoints on disk, that every saved step is loaded exactly
once, with no rows of a job the manifest does not record as done, and that a rerun of the
watcher loads what it had left and then nothing more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from tests.faults.tinymodel import SMALL, raw_tables

STEPS, EVERY = 40, 10
SAVED = [10, 20, 30, 40]
PROBES = "weights,training_log"
WEIGHT_PARAMS = ["--tensors", "embed", "--param", "weights.msd_sample=256"]


def _train(out: Path, callbacks: list) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**SMALL))
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 64, (32, 16), generator=g)]
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        save_steps=EVERY,
        logging_steps=5,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks).train()


def _rows(warehouse: Path, model_id: str) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        runs = con.execute(
            "SELECT step, probe, count(*) FROM raw.ingest_runs WHERE model_id=? AND status='success' GROUP BY ALL",
            [model_id],
        ).fetchall()
        failed = con.execute("SELECT count(*) FROM raw.ingest_runs WHERE status<>'success'").fetchone()[0]
        stats = con.execute(
            "SELECT step, count(*) FROM raw.weight_stats WHERE model_id=? GROUP BY step", [model_id]
        ).fetchall()
        log = con.execute(
            "SELECT step, count(DISTINCT log_step), max(log_step) FROM raw.training_log WHERE model_id=? GROUP BY step",
            [model_id],
        ).fetchall()
    finally:
        con.close()
    return {
        "runs": {(s, p): n for s, p, n in runs},
        "failed": failed,
        "stats": dict(stats),
        "log": {s: (n, last) for s, n, last in log},
    }


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """Train once with the callback on and `tdw watch` watching; SIGINT the watcher as soon
    as it starts on its second checkpoint."""
    from tdw.trainer import TdwCallback

    root = Path(os.environ["TDW_DATA_DIR"]) / "live"
    root.mkdir(parents=True, exist_ok=True)
    out = tmp_path_factory.mktemp("trainer") / "run"
    out.mkdir()
    cb_wh, watch_wh = root / "callback.duckdb", root / "watch.duckdb"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tdw", "watch", str(out), "--probes", PROBES, *WEIGHT_PARAMS]
        + ["--warehouse", str(watch_wh), "--interval", "0.2", "--settle", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines: list[str] = []
    first = threading.Event()

    def read():
        for line in watcher.stdout:
            lines.append(line.rstrip())
            if "checkpoint-20: ingesting" in line:  # in flight: it must finish, then the watcher stops
                first.set()
                watcher.send_signal(signal.SIGINT)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cb = TdwCallback(warehouse=cb_wh, probes=PROBES, tensors="embed", params={"weights": {"msd_sample": 256}})
    try:
        _train(out, [cb])
        first.wait(timeout=120)
        watcher.wait(timeout=120)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    reader.join(timeout=10)
    return {
        "out": out,
        "callback": cb,
        "cb_wh": cb_wh,
        "watch_wh": watch_wh,
        "watch_rc": watcher.returncode,
        "watch_out": lines,
        "watch_err": watcher.stderr.read(),
    }


def _expected_log(folder: Path) -> tuple[int, int]:
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    steps = {r["step"] for r in history}
    return len(steps), max(steps)


@pytest.mark.slow
def test_callback_loads_every_saved_checkpoint(live_run):
    cb, out = live_run["callback"], live_run["out"]
    assert sorted(p.name for p in out.iterdir()) == [f"checkpoint-{s}" for s in SAVED]
    assert cb.errors == []
    assert sorted(r["step"] for r in cb.results) == SAVED
    got = _rows(live_run["cb_wh"], f"local/{out.name}")
    assert got["failed"] == 0
    assert got["runs"] == {(s, p): 1 for s in SAVED for p in PROBES.split(",")}
    assert got["stats"] == {s: 1 for s in SAVED}  # one tensor (embed) per checkpoint
    # each checkpoint's training log is its own trainer_state.json's, as the Trainer wrote it
    assert got["log"] == {s: _expected_log(out / f"checkpoint-{s}") for s in SAVED}


@pytest.mark.slow
def test_watch_stops_cleanly_and_resumes_exactly_once(live_run):
    from warehouse.pipeline import IngestRequest
    from warehouse.watch import Polling, watch

    assert live_run["watch_rc"] == 0, live_run["watch_err"]
    assert "SIGINT: stopping after the checkpoint in flight" in live_run["watch_err"]
    done = [ln for ln in live_run["watch_out"] if ln.startswith("[") and "jobs loaded" in ln]
    reported = [int(ln.split("checkpoint-")[1].split(":")[0]) for ln in done]
    out, wh, model = live_run["out"], live_run["watch_wh"], f"local/{live_run['out'].name}"
    # the checkpoint in flight at the signal (20) finished, then the watcher stopped (one more
    # only if the signal came late, after 20 was done: a loaded machine's scheduling)
    assert reported[:2] == [10, 20] and len(reported) < len(SAVED), live_run["watch_out"]
    got = _rows(wh, model)
    # exactly the reported checkpoints, each job once, and no rows without a finished job
    assert got["runs"] == {(s, p): 1 for s in reported for p in PROBES.split(",")}
    assert set(got["stats"]) == set(got["log"]) == set(reported)

    def rerun():
        req = IngestRequest(str(out), probes=PROBES, warehouse=wh, params={"weights": {"tensors": "embed"}})
        req.params["weights"]["msd_sample"] = "256"
        return watch(req, Polling(interval=0.05, settle=0, once=True), echo=lambda s: None)

    first = rerun()
    assert sorted(first.checkpoints) == SAVED
    assert first.jobs_done == 2 * (len(SAVED) - len(reported)) and not first.failed
    got = _rows(wh, model)
    assert got["runs"] == {(s, p): 1 for s in SAVED for p in PROBES.split(",")}
    assert got["log"] == {s: _expected_log(out / f"checkpoint-{s}") for s in SAVED}
    before = raw_tables(wh)
    second = rerun()
    assert second.jobs_done == 0 and second.jobs_skipped == 2 * len(SAVED)
    assert raw_tables(wh) == before  # nothing added, nothing rewritten


def test_watch_bad_input_is_one_line(tmp_path):
    from click.testing import CliRunner

    from tdw.cli import main

    (tmp_path / "file").write_text("x")
    one = tmp_path / "one"
    one.mkdir()
    (one / "config.json").write_text("{}")
    for args, says in [
        ([str(tmp_path / "missing")], "no such directory"),
        ([str(tmp_path / "file")], "not a directory"),
        ([str(one)], "one checkpoint, not a series"),
        ([str(tmp_path), "--build-every", "3x"], "expected N (checkpoints) or N followed by s, m or h"),
        ([str(tmp_path), "--probes", "nope"], "unknown probe 'nope'"),
        ([str(tmp_path), "--param", "weights.bins=3"], "has no parameter 'bins'"),
    ]:
        wh = Path(os.environ["TDW_DATA_DIR"]) / "bad-input.duckdb"
        res = CliRunner().invoke(main, ["watch", *args, "--warehouse", str(wh), "--once", "--settle", "0"])
        assert res.exit_code == 1, res.output
        assert res.output.count("\n") == 1 and says in res.output, res.output
        assert not wh.exists()


@pytest.mark.slow  # starts the callback's ingest worker process
def test_callback_reports_background_errors_without_raising(tmp_path):
    """A worker that cannot ingest (here: the warehouse path holds no DuckDB file) is reported
    in ``errors`` and the log; nothing reaches the Trainer. Wrong options fail at once."""
    from ingest.errors import TdwError
    from tdw.trainer import TdwCallback

    bad = Path(os.environ["TDW_DATA_DIR"]) / "live-not-a-db.duckdb"
    bad.write_text("not a database")
    with pytest.raises(TdwError, match="unknown probe"):
        TdwCallback(warehouse=bad, probes="nope")
    cb = TdwCallback(warehouse=bad, probes="weights")
    out = tmp_path / "run"
    cb.submit(str(out), 10)  # starts the worker, queues one step
    assert cb.finish(timeout=120) is False
    assert any("is not a DuckDB file" in e for e in cb.errors), cb.errors
    assert bad.read_text() == "not a database"
