"""The ``residual`` probe: residual-stream dynamics per checkpoint (METHODS §C, seed 002).

Per checkpoint: one nnsight trace per batch of prompts captures the stream at every
sample point (``sites``), streaming into the per-point metrics (``metrics``); the
last-token states of all prompts ([prompts, points, d], small) then feed the PCA
trajectories (``pca``, own basis and the basis shared across checkpoints), the
convergence of prompt pairs and the perturbation runs (``attractor``). The base model is
run without its lm_head, so no logits are computed.

Parameters (``defaults``): ``prompts`` ('toy' or a .txt/.json/.npy file), ``n_prompts``,
``prompt_len`` and ``seed`` (toy prompts; the seed also fixes the rotation control, the
layer permutations, the prompt pairs and the perturbed prompts), ``positions`` ('last':
the last token of each prompt, the paper's choice, or 'all': every token; PCA, pairs and
perturbations always use the last token), ``batch_size``, ``rms_fraction`` (density
threshold), ``n_permutations`` (rotation-count control), ``basis_step`` ('final' = the
model's last checkpoint, or a step), ``perturb_layers`` ('auto' = the first two block
inputs, 'none', or a list of block-input points), ``perturb_prompts``, ``grid``,
``grid_margin``, ``n_pairs``, ``device`` and ``dtype`` (``ingest.devices``: the model runs
there; the captured states come back to the CPU, where every metric is computed in float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ingest import devices
from ingest.batching import adaptive_map
from ingest.errors import TdwError
from ingest.probes.base import Probe, Progress
from ingest.probes.residual import attractor, pca
from ingest.probes.residual.metrics import StreamStats, layer_permutations, random_rotation
from ingest.probes.residual.prompts import load_prompts
from ingest.probes.residual.sites import Layout, capture, layout_of, release_freed_memory, traced_base
from ingest.probes.residual.tables import TABLES, Computed, frame
from ingest.prompts import PromptSet
from ingest.sources import Checkpoint


def perturb_points(spec: Any, layout: Layout) -> list[int]:
    """The perturbed points named by ``perturb_layers``, checked against the model."""
    if spec in (None, "", "none", []):
        return []
    if spec == "auto":
        return layout.block_inputs()[:2]
    if isinstance(spec, str):
        try:
            spec = [int(x) for x in spec.split(",")]
        except ValueError:
            raise TdwError(
                f"residual probe: perturb_layers {spec!r} is not 'auto', 'none' or a "
                "comma-separated list of layer indices"
            ) from None
    points = [spec] if isinstance(spec, int) else [int(x) for x in spec]
    for p in points:
        if not 0 <= p < layout.n_points:
            raise TdwError(
                f"residual probe: layer {p} does not exist; this model has sample points 0..{layout.n_points - 1}"
            )
        if layout.points[p].site != "block_in":
            raise TdwError(
                f"residual probe: layer {p} is a {layout.points[p].site} point; "
                f"perturbations go at block inputs {layout.block_inputs()}"
            )
    return sorted(set(points))


def last_token_states(model, layout: Layout, ps: PromptSet, batch_size: int) -> np.ndarray:
    """[prompts, points, d] last-token stream of every prompt (no metrics)."""
    traced = traced_base(model)
    out = adaptive_map(
        len(ps),
        batch_size,
        lambda s, e: capture(traced, layout, *ps.padded(s, e)).numpy(),
        key=("residual", layout.d_model, layout.n_points),
    )
    return np.concatenate(out)


class ResidualProbe(Probe):
    name = "residual"
    runs_model = True
    version = "1"
    defaults = {
        "prompts": "toy",
        "n_prompts": 64,
        "prompt_len": 64,
        "seed": 0,
        "positions": "last",
        "batch_size": 32,
        "rms_fraction": 0.5,
        "n_permutations": 1,
        "basis_step": "final",
        "perturb_layers": "auto",
        "perturb_prompts": 4,
        "grid": 3,
        "grid_margin": 0.1,
        "n_pairs": 256,
        "device": "auto",
        "dtype": "float32",
    }
    tables = TABLES

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        layout = layout_of(checkpoint.config())
        if params["positions"] not in ("last", "all"):
            raise TdwError(f"residual probe: positions must be 'last' or 'all', not {params['positions']!r}")
        for k in ("batch_size", "grid"):
            if int(params[k]) < 1:
                raise TdwError(f"residual probe: {k} must be at least 1")
        if params["basis_step"] != "final" and not str(params["basis_step"]).isdigit():
            raise TdwError(f"residual probe: basis_step must be 'final' or a step, not {params['basis_step']!r}")
        perturb_points(params["perturb_layers"], layout)
        load_prompts(params, layout, checkpoint)

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        """Prompts and the shared PCA basis (fit once on the final checkpoint)."""
        ck = source.checkpoint(max(steps))
        layout = layout_of(ck.config())
        ps = load_prompts(params, layout, ck)
        basis_step = params["basis_step"]
        if basis_step == "final":  # the run's last checkpoint, even if not selected
            try:
                basis_step = max(source.steps())
            except TdwError:
                basis_step = max(steps)
        try:
            basis_ck = ck if int(basis_step) == ck.step else source.checkpoint(int(basis_step))
            model = devices.load(basis_ck, params)
        except TdwError:
            if params["basis_step"] != "final":
                raise
            basis_step, model = ck.step, devices.load(ck, params)  # final not reachable: last selected
        states = last_token_states(model, layout, ps, int(params["batch_size"]))
        del model
        return {"prompts": ps, "shared_basis": pca.fit(states), "basis_step": int(basis_step)}

    def run(
        self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, pd.DataFrame]:
        layout = layout_of(checkpoint.config())
        ps: PromptSet = context.get("prompts") or load_prompts(params, layout, checkpoint)
        perturb_at = perturb_points(params["perturb_layers"], layout)
        seed, bs = int(params["seed"]), int(params["batch_size"])
        all_tokens = params["positions"] == "all"
        key = (layout.d_model, layout.n_points, seed, int(params["n_permutations"]))
        if context.get("controls_key") != key:
            context["controls"] = (
                random_rotation(layout.d_model, seed),
                layer_permutations(layout.n_points, key[3], seed),
            )
            context["controls_key"] = key
        stats = StreamStats(
            layout.n_points, layout.d_model, *context["controls"], rms_fraction=float(params["rms_fraction"])
        )
        model = devices.load(checkpoint, params)
        traced = traced_base(model)
        last_states = []
        n_batches = -(-len(ps) // bs)

        def batch(s: int, e: int) -> None:
            ids, lengths = ps.padded(s, e)
            h = capture(traced, layout, ids, lengths, all_tokens)  # [b, (pos,) points, d]  # noqa: F821
            if all_tokens:
                valid = torch.arange(ids.shape[1])[None, :] < lengths[:, None]  # [b, pos]
                last = h[torch.arange(len(lengths)), lengths - 1].numpy()
                h = h[valid]  # [samples, points, d]
            else:
                last = h.numpy()
            stats.update(h)
            last_states.append(last)  # after the allocations: a retried batch adds once
            del h
            release_freed_memory()
            if progress:
                progress(f"residual: prompts {e}/{len(ps)} (batches of {e - s}, planned {n_batches})")

        adaptive_map(len(ps), bs, batch, key=("residual", layout.d_model, layout.n_points))
        states = np.concatenate(last_states).astype(np.float64)  # [prompts, points, d]
        fin = stats.finalize()

        own = pca.fit(states)
        bases = {"own": (own, checkpoint.step)}
        if context.get("shared_basis") is not None:
            bases["shared"] = (context["shared_basis"], context["basis_step"])
        pairs = attractor.seeded_pairs(len(ps), int(params["n_pairs"]), seed)
        conv = attractor.pair_convergence(states, pairs)

        runs = {}
        if perturb_at:
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.permutation(len(ps))[: int(params["perturb_prompts"])])
            baseline = attractor.Baseline.of(model.base_model, [ps.prompts[i] for i in chosen], states[chosen])
            for at in perturb_at:
                grid = attractor.plane_grid(
                    own.project(states[:, at])[:, :2], int(params["grid"]), float(params["grid_margin"])
                )
                runs[at] = (grid, attractor.perturbation_runs(traced, layout, baseline, own, at, grid))
                if progress:
                    progress(f"residual: perturbations at layer {at}")
        else:
            chosen = np.array([], dtype=int)
        del traced, model
        return frame(checkpoint, params, Computed(layout, ps, fin, states, bases, conv, runs, chosen))
