"""The ``graph`` probe (METHODS §A): the component causal graph of one checkpoint.

For every task and ablation type it measures all edges the architecture allows (see
``adapters`` and ``ablate``) per prompt, then stores mean, sample standard deviation
(ddof 1; 0 for a single prompt) and count over prompts. Edges into ``logits`` also carry
KL(clean || ablated) and the change of the task loss; the other edges leave them NULL.
``graph_prompts`` stores every prompt's token ids, measured range, seed and clean task
loss at this checkpoint, so each edge can be recomputed from the warehouse alone.

The loader's quality gate (``warehouse/quality.py``) checks the frames before it commits
anything: the TableSpecs' expectations (weight = 1 - cos in [0, 2], rel_l2 and kl finite
and >= 0, kl NULL off the logits edges, dloss finite, n_prompts >= 1, 0 <= measure_start <
measure_end) and, from ``expectations``, that every (src, dst) is an edge the
architecture allows (the run records them in ``graph_edges.attrs["allowed_edges"]``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ingest import devices
from ingest.errors import TdwError
from ingest.probes.base import Probe, Progress
from ingest.schema import Expect, TableSpec, between, finite, greater, not_null, pairs_in
from ingest.probes.graph.adapters import MEASURES, Adapter, adapter_for
from ingest.probes.graph.tasks import TASKS, TaskPrompts, build_prompts
from ingest.sources import Checkpoint

ABLATIONS = ("zero", "mean")
_SLICE = ("task", "ablation")


def as_list(value: Any) -> list[str]:
    """A list parameter given as a list or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(x).strip() for x in items if str(x).strip()]


def aggregate(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std over prompts: a [edges, prompts] tensor -> ([edges], [edges])."""
    v = values.cpu().numpy()
    std = v.std(axis=1, ddof=1) if v.shape[1] > 1 else np.zeros(v.shape[0])
    return v.mean(axis=1), std


class GraphProbe(Probe):
    name = "graph"
    runs_model = True
    version = "1"
    # seq_len 32: R R with |R| = 16, inside the toy corpus's training periods (8-24)
    defaults = {"tasks": "induction", "ablations": "zero", "n_prompts": 16, "seq_len": 32,
                "seed": 0, "text_file": None, "logits_chunk_mb": 256, "device": "auto", "dtype": "float32",
                "threads": 1}
    tables = (
        TableSpec("graph_edges", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("task", "VARCHAR"), ("ablation", "VARCHAR"),
            ("src", "VARCHAR"), ("dst", "VARCHAR"),
            *((c, "DOUBLE") for m in MEASURES for c in (m, f"{m}_std")),
            ("n_prompts", "INTEGER"),
        ), ("model_id", "step", "task", "ablation", "src", "dst"), _SLICE,
            "One edge of the component graph: mean and std over prompts of each measure.",
            (not_null("weight", "rel_l2", "n_prompts"), between("weight", 0.0, 2.0), finite("rel_l2", 0),
             finite("kl", 0), finite("dloss"), between("n_prompts", 1))),
        TableSpec("graph_prompts", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("task", "VARCHAR"), ("ablation", "VARCHAR"),
            ("prompt_index", "INTEGER"), ("seed", "BIGINT"), ("token_ids", "INTEGER[]"),
            ("measure_start", "INTEGER"), ("measure_end", "INTEGER"), ("clean_loss", "DOUBLE"),
        ), ("model_id", "step", "task", "ablation", "prompt_index"), _SLICE,
            "The prompts a graph was measured on, the measured positions [start, end) and the "
            "clean task loss there.",
            (between("measure_start", 0), greater("measure_end", "measure_start"))),
    )

    def expectations(self, frames: dict[str, pd.DataFrame], job: dict[str, Any] | None = None
                     ) -> dict[str, tuple[Expect, ...]]:
        """The TableSpecs' expectations, and every edge among those the architecture allows."""
        out = super().expectations(frames, job)
        edges = frames.get("graph_edges")
        if edges is not None and "allowed_edges" in edges.attrs:
            out["graph_edges"] += (pairs_in("src", "dst", edges.attrs["allowed_edges"]),)
        return out

    def _adapter(self, checkpoint: Checkpoint) -> Adapter:
        return adapter_for(checkpoint.config())

    def _prompts(self, checkpoint: Checkpoint, params: dict[str, Any]) -> dict[str, TaskPrompts]:
        ad = self._adapter(checkpoint)
        return {t: build_prompts(t, params, checkpoint, ad.vocab_size, ad.n_ctx)
                for t in as_list(params["tasks"])}

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        self._adapter(checkpoint)
        tasks, ablations = as_list(params["tasks"]), as_list(params["ablations"])
        if not tasks or not ablations:
            raise TdwError("the graph probe needs at least one task and one ablation")
        for t in tasks:
            if t not in TASKS:
                raise TdwError(f"unknown graph task {t!r}; available: {', '.join(TASKS)}")
        for a in ablations:
            if a not in ABLATIONS:
                raise TdwError(f"unknown ablation {a!r}; available: {', '.join(ABLATIONS)}")
        self._prompts(checkpoint, params)       # bad files, over-long prompts fail here

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        return {"prompts": self._prompts(source.checkpoint(steps[0]), params)}

    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        """The tables of one checkpoint. Torch runs ``threads`` threads meanwhile (0: leave
        torch's setting): the graph's many small kernels gain little from threads, and on a
        busy machine a multi-threaded small kernel mostly waits for its sibling threads."""
        import torch
        previous = torch.get_num_threads()
        if int(params["threads"]) > 0:
            torch.set_num_threads(int(params["threads"]))
        try:
            return self._run(checkpoint, params, context, progress)
        finally:
            torch.set_num_threads(previous)

    def _run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
             progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        from ingest.probes.graph.ablate import component_graph
        prompts = context.get("prompts") or self._prompts(checkpoint, params)
        ad = self._adapter(checkpoint)
        model = devices.load(checkpoint, params)
        key = {"model_id": checkpoint.model_id, "step": checkpoint.step}
        edges, prompt_rows = [], []
        for task, ps in prompts.items():
            batch = ps.batch().to(devices.resolve_device(str(params["device"])))
            for ablation in as_list(params["ablations"]):
                if progress:
                    progress(f"{task}/{ablation}")
                g = component_graph(model, ad, batch, ablation,
                                    logits_chunk_mb=float(params["logits_chunk_mb"]))
                frame = pd.DataFrame({**key, "task": task, "ablation": ablation,
                                      "src": g.src, "dst": g.dst})
                for m in MEASURES:
                    mean, std = aggregate(g.values[m])
                    frame[m], frame[f"{m}_std"] = mean, std
                frame["n_prompts"] = len(ps)
                edges.append(frame)
                prompt_rows.append(pd.DataFrame({
                    **key, "task": task, "ablation": ablation, "prompt_index": np.arange(len(ps)),
                    "seed": ps.seeds, "token_ids": [p.astype(np.int32) for p in ps.prompts],
                    "measure_start": ps.measure_start, "measure_end": ps.measure_end,
                    "clean_loss": g.clean_loss.cpu().numpy()}))
        cols = {t.name: t.column_names for t in self.tables}
        frames = {"graph_edges": pd.concat(edges, ignore_index=True)[cols["graph_edges"]],
                  "graph_prompts": pd.concat(prompt_rows, ignore_index=True)[cols["graph_prompts"]]}
        frames["graph_edges"] = frames["graph_edges"].astype(
            {c: "Float64" for m in ("kl", "dloss") for c in (m, f"{m}_std")})
        frames["graph_edges"].attrs["allowed_edges"] = tuple(tuple(e) for e in ad.graph_edges())
        return frames
