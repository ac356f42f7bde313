"""The training log of a checkpoint (``trainer_state.json``) as raw.training_log.

Each checkpoint's file holds the run's log so far; its rows are kept per checkpoint
(``step`` is the checkpoint, ``log_step`` the logged step) and ``fct_training_log`` keeps,
for each logged step and metric, the value from the latest checkpoint that has it. A
checkpoint without the file yields no rows (not a failure): most hub series carry none.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from ingest.probes.base import Probe, TableSpec, finite, not_null
from ingest.sources import Checkpoint
from ingest.traininglog import COLUMNS, read_log


class TrainingLogProbe(Probe):
    name: ClassVar[str] = "training_log"
    version: ClassVar[str] = "1"
    defaults: ClassVar[dict[str, Any]] = {}
    tables = (
        TableSpec(
            "training_log",
            (
                ("model_id", "VARCHAR"),
                ("step", "BIGINT"),
                ("log_step", "BIGINT"),
                ("metric", "VARCHAR"),
                ("value", "DOUBLE"),
            ),
            key=("model_id", "step", "log_step", "metric"),
            description="trainer_state.json log_history of each checkpoint, one row per logged step x metric",
            expect=(not_null("value"), finite("value")),
        ),
    )

    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress=None
    ) -> dict[str, pd.DataFrame]:
        df = read_log(checkpoint.folder) if checkpoint.folder is not None else None
        if df is None:
            df = pd.DataFrame(columns=COLUMNS)
        df.insert(0, "step", checkpoint.step)
        df.insert(0, "model_id", checkpoint.model_id)
        return {"training_log": df.astype({"step": "int64", "log_step": "int64", "value": "float64"})}
