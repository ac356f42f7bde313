"""Training logs: trainer_state.json -> raw.training_log -> fct_training_log and the
learning-rate / loss milestones in fct_phase_alignment, checked against numpy computations
of the same definitions on a Trainer-shaped series with a known schedule."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from ingest.traininglog import flatten
from tests.unit.test_naming import _series

STEPS = np.arange(1, 81)
LR = np.where(STEPS <= 12, 1e-3 * STEPS / 12, 1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (STEPS - 12) / 68))))
LOSS = 4.0 - 2.5 / (1 + np.exp(-(STEPS - 37) / 3.0)) + 0.01 * np.sin(STEPS)


def _history(upto: int) -> list[dict]:
    out = [
        {"step": int(s), "loss": float(l), "learning_rate": float(r), "grad_norm": 1.0, "epoch": s / 80}
        for s, l, r in zip(STEPS, LOSS, LR)
        if s <= upto
    ]
    out += [{"step": upto, "eval_loss": 3.0, "eval_runtime": 0.1}, {"train_runtime": 5.0, "step": "x"}]
    return out


def _expected() -> dict:
    warmup_end = next(int(s) for s, a, b in zip(STEPS, LR, LR[1:]) if b <= a)
    smoothed = np.array([LOSS[max(0, i - 2) : i + 3].mean() for i in range(len(LOSS))])
    slopes = np.diff(smoothed) / np.diff(STEPS)
    window, tol = 10, 0.01  # the dbt vars' defaults
    flat = [
        i + window <= len(smoothed) and np.ptp(smoothed[i : i + window]) <= tol * abs(smoothed[i : i + window].mean())
        for i in range(len(smoothed))
    ]
    starts = [i for i in range(len(flat)) if flat[i] and (i == 0 or not flat[i - 1])]
    end = next(i for i in range(starts[0], len(flat)) if not flat[i]) - 1
    return {
        "plateau_start_step": int(STEPS[starts[0]]),
        "plateau_start_prev_step": int(STEPS[starts[0] - 1]) if starts[0] else None,
        "plateau_end_step": int(STEPS[end + window - 1]),
        "n_loss_plateaus": len(starts),
        "warmup_end_step": warmup_end,
        "lr_peak_step": int(STEPS[np.argmax(LR)]),
        "steepest_loss_drop_step": int(STEPS[1:][np.argmin(slopes)]),
    }


def test_flatten_keeps_numbers_and_the_last_record():
    df = flatten(
        [
            {"step": 1, "loss": 2.0, "note": "x"},
            {"step": 1, "loss": 3.0},
            {"step": -1, "loss": 1.0},
            {"loss": 1.0},
            {"step": 2, "loss": float("nan"), "learning_rate": 5},
        ]
    )
    assert df.values.tolist() == [[1, "loss", 3.0], [2, "learning_rate", 5.0]]


@pytest.mark.slow  # builds the marts with dbt
def test_training_log_marts(tmp_path):
    out = _series(tmp_path / "out", ["checkpoint-40", "checkpoint-80", "checkpoint-20"], trainer=True)
    for name in ("checkpoint-20", "checkpoint-40", "checkpoint-80"):
        step = int(name.split("-")[1])
        (out / name / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": _history(step)}))
    bad = _series(tmp_path / "bad", ["checkpoint-1", "checkpoint-2"], trainer=True)
    (bad / "checkpoint-1" / "trainer_state.json").write_text("{not json")
    wh = tmp_path / "wh" / "w.duckdb"
    tdw = [sys.executable, "-c", "from tdw.cli import main; main()"]
    for src in (out, bad):
        proc = subprocess.run(
            tdw + ["ingest", str(src), "--probes", "weights,training_log", "--warehouse", str(wh)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.returncode == (0 if src == out else 1), proc.stdout + proc.stderr
    assert "failed step1 training_log" in proc.stdout and "not valid JSON" in proc.stdout
    con = duckdb.connect(str(wh), read_only=True)
    jobs = con.execute(
        "SELECT step, probe, status, error FROM raw.ingest_runs WHERE model_id = 'local/bad' ORDER BY step, probe"
    ).fetchall()
    con.close()
    # the bad file fails its one job with a one-line reason; the batch goes on
    assert [j[:3] for j in jobs] == [
        (1, "training_log", "failed"),
        (1, "weights", "success"),
        (2, "training_log", "success"),
        (2, "weights", "success"),
    ]
    assert "\n" not in jobs[0][3] and "not valid JSON" in jobs[0][3]
    proc = subprocess.run(tdw + ["build", "--warehouse", str(wh)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    con = duckdb.connect(str(wh), read_only=True)
    try:
        log = con.execute(
            "SELECT step, metric, value, checkpoint_step FROM marts.fct_training_log "
            "WHERE model_id = 'local/out' ORDER BY step, metric"
        ).fetchall()
        assert len(log) == 80 * 4 + 2 * 3  # 4 metrics a step; eval_loss, eval_runtime at 20, 40, 80
        by = {(s, m): (v, c) for s, m, v, c in log}
        assert by[(80, "eval_loss")] == (3.0, 80) and by[(15, "loss")][1] == 80
        np.testing.assert_allclose([by[(int(s), "learning_rate")][0] for s in STEPS], LR)
        got = con.execute(
            "SELECT warmup_end_step, lr_peak_step, steepest_loss_drop_step, "
            "(warmup_end_minus_msd IS NULL) = (msd_peak_step IS NULL) FROM marts.fct_phase_alignment "
            "WHERE model_id = 'local/out'"
        ).fetchall()
        exp = _expected()
        assert got == [(exp["warmup_end_step"], exp["lr_peak_step"], exp["steepest_loss_drop_step"], True)]
        plateau = ("plateau_start_step", "plateau_start_prev_step", "plateau_end_step", "n_loss_plateaus")
        got = con.execute(
            "SELECT loss_plateau_start_step, loss_plateau_start_prev_step, loss_plateau_end_step, n_loss_plateaus "
            "FROM marts.fct_phase_alignment WHERE model_id = 'local/out'"
        ).fetchall()
        assert got == [tuple(exp[k] for k in plateau)]
        assert {k: v for k, v in exp.items() if k not in plateau} == {
            "warmup_end_step": 12,
            "lr_peak_step": 12,
            "steepest_loss_drop_step": exp["steepest_loss_drop_step"],
        }
        assert 34 <= exp["steepest_loss_drop_step"] <= 40
        # the loss starts flat (before the sigmoid drop at 37) and ends flat after it
        assert exp["plateau_start_step"] == 1 and exp["n_loss_plateaus"] == 2 and exp["plateau_end_step"] < 37
        revisions = con.execute(
            "SELECT revision, tokens_seen FROM marts.dim_checkpoint WHERE model_id = 'local/out' ORDER BY step"
        ).fetchall()
        assert revisions == [("checkpoint-20", None), ("checkpoint-40", None), ("checkpoint-80", None)]
    finally:
        con.close()
