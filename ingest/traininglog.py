"""Training logs in the Hugging Face Trainer's format (``trainer_state.json``).

A Trainer checkpoint carries its run's ``log_history`` so far: a list of records, each
with a ``step`` and numbers such as ``loss``, ``learning_rate``, ``grad_norm``, ``epoch`` and
eval metrics. The toy trainer writes the same file, so one reader serves both, and the
warehouse can put the learning-rate schedule and the loss curve beside the probes'
dynamics (warm-up end against the MSD peak is then one query). Records are flattened to
(log_step, metric, value); non-numeric and non-finite values are left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ingest.errors import TdwError

STATE_FILE = "trainer_state.json"
MAX_BYTES = 64 * 2**20
COLUMNS = ["log_step", "metric", "value"]


def read_log(folder: Path) -> pd.DataFrame | None:
    """The flattened log_history of ``folder/trainer_state.json``; None when there is none.
    A file that is not a Trainer state is a one-line TdwError."""
    from ingest.tensors import check_regular

    path = folder / STATE_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    check_regular(path)
    if path.stat().st_size > MAX_BYTES:
        raise TdwError(f"{path}: larger than {MAX_BYTES >> 20} MiB")
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise TdwError(f"{path}: not valid JSON ({str(e).splitlines()[0][:80]})") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise TdwError(f"{path}: no log_history list (not a Trainer state)")
    return flatten(history)


def flatten(history: list) -> pd.DataFrame:
    """(log_step, metric, value) rows, one per numeric entry; a later record of the same
    (step, metric) replaces an earlier one (a resumed run logs a step again)."""
    rows: dict[tuple[int, str], float] = {}
    for rec in history:
        if not isinstance(rec, dict) or type(rec.get("step")) is not int or rec["step"] < 0:
            continue
        for k, v in rec.items():
            if k != "step" and type(v) in (int, float) and math.isfinite(v):
                rows[(rec["step"], str(k))] = float(v)
    return pd.DataFrame([(s, m, v) for (s, m), v in sorted(rows.items())], columns=COLUMNS)


def write_state(folder: Path, global_step: int, history: list[dict]) -> None:
    """Write ``trainer_state.json`` as the Trainer does (the fields the warehouse reads)."""
    state = {
        "global_step": global_step,
        "log_history": history,
        "best_metric": None,
        "best_model_checkpoint": None,
        "is_world_process_zero": True,
    }
    (folder / STATE_FILE).write_text(json.dumps(state, indent=1))
