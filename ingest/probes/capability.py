"""Capability probe: the model's next-token loss on named tasks at every checkpoint, so the
capability transition (the toy's induction transition) is a measured signal that the
parameter, residual and graph signals can be lined up with (fct_capability,
int_capability_transition, fct_phases, fct_phase_alignment).

Tasks are the graph probe's (``ingest.probes.graph.tasks``), one home for their prompts:
``induction`` (a held-out random segment R and R again; scored on the repeat, predictable
only by copying; default |R| = 16, the graph task's length) and ``markov`` (held-out text
of the toy corpus the model was trained on), with this probe's own seed so the prompts
are not the graph's. Per prompt it stores the mean cross-entropy (nats) and the top-1
accuracy over the measured positions: per-prompt rows, so an interval over prompts can be
drawn in SQL. The model runs once per batch of prompts, without hooks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ingest import devices
from ingest.errors import TdwError
from ingest.probes.base import Probe, Progress
from ingest.probes.graph.adapters import adapter_for
from ingest.probes.graph.tasks import TASKS, build_prompts
from ingest.schema import TableSpec, between, not_null
from ingest.sources import Checkpoint

TABLE = TableSpec(
    "capability",
    (
        ("model_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("task", "VARCHAR"),
        ("prompt_index", "INTEGER"),
        ("seed", "BIGINT"),
        ("n_scored", "INTEGER"),
        ("loss", "DOUBLE"),
        ("accuracy", "DOUBLE"),
    ),
    ("model_id", "step", "task", "prompt_index"),
    (),
    "Per task and prompt: mean next-token cross-entropy (nats) and top-1 accuracy over the "
    "task's measured positions (for induction, the repeat of R R).",
    (not_null("loss", "accuracy"), between("loss", 0), between("accuracy", 0, 1), between("n_scored", 1)),
)


def _tasks(params: dict[str, Any]) -> list[str]:
    return [t.strip() for t in str(params["tasks"]).split(",") if t.strip()]


class CapabilityProbe(Probe):
    name = "capability"
    version = "1"
    runs_model = True
    defaults = {
        "tasks": "induction,markov",
        "n_prompts": 64,
        "seq_len": 32,
        "seed": 20241,
        "text_file": None,
        "batch_size": 32,
        "device": "auto",
        "dtype": "float32",
    }
    tables = (TABLE,)

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        tasks = _tasks(params)
        if not tasks:
            raise TdwError("the capability probe needs at least one task")
        for t in tasks:
            if t not in TASKS:
                raise TdwError(f"unknown capability task {t!r}; available: {', '.join(TASKS)}")
        if int(params["batch_size"]) < 1:
            raise TdwError(f"capability batch_size must be >= 1, got {params['batch_size']}")
        self._prompts(checkpoint, params)

    def _prompts(self, checkpoint: Checkpoint, params: dict[str, Any]) -> dict:
        ad = adapter_for(checkpoint.config())
        return {t: build_prompts(t, params, checkpoint, ad.vocab_size, ad.n_ctx) for t in _tasks(params)}

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        return {"prompts": self._prompts(source.checkpoint(steps[0]), params)}

    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, pd.DataFrame]:
        import torch

        prompts = context.get("prompts") or self._prompts(checkpoint, params)
        model = devices.load(checkpoint, params).eval()
        device = devices.device_of(model)
        bs = int(params["batch_size"])
        frames = []
        for task, ps in prompts.items():
            batch = ps.batch()
            loss, acc, n = [], [], []
            with torch.no_grad():
                for s in range(0, len(ps), bs):
                    ids = batch.ids[s : s + bs].to(device)
                    logits = model(ids).logits.double()  # [b, T, vocab]
                    nll = torch.nn.functional.cross_entropy(
                        logits.transpose(1, 2), batch.targets[s : s + bs].to(device), reduction="none"
                    )  # [b, T]
                    hit = (logits.argmax(-1) == batch.targets[s : s + bs].to(device)).double()
                    m = batch.measure[s : s + bs].to(device).double()
                    cnt = m.sum(1)
                    loss.append(((nll * m).sum(1) / cnt).cpu().numpy())
                    acc.append(((hit * m).sum(1) / cnt).cpu().numpy())
                    n.append(cnt.cpu().numpy())
            if progress:
                progress(f"capability: {task}")
            frames.append(
                pd.DataFrame(
                    {
                        "model_id": checkpoint.model_id,
                        "step": checkpoint.step,
                        "task": task,
                        "prompt_index": np.arange(len(ps), dtype=np.int32),
                        "seed": ps.seeds,
                        "n_scored": np.concatenate(n).astype(np.int32),
                        "loss": np.concatenate(loss),
                        "accuracy": np.concatenate(acc),
                    }
                )
            )
        return {TABLE.name: pd.concat(frames, ignore_index=True)[list(TABLE.column_names)]}
