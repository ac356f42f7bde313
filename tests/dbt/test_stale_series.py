"""Stale and inconsistent checkpoints in series shaped like the real ones (EleutherAI/pythia
#205 and #206), on toy-shaped GPT-NeoX-named checkpoints with uneven step gaps:

- #205: steps serving another step's whole checkpoint (two groups: the final one and a
  second blob) -> identical_checkpoint at exactly those steps, nothing else;
- #206: a sharded series whose first shard, at two non-adjacent steps, is the final
  checkpoint's -> stale_tensor at those steps and the final one, for exactly the first
  shard's tensors, nothing else;
- a tensor scaled at one step (no exact copy, a jump against both neighbours) ->
  discontinuity there, for that tensor only; its other tensors, a clean random walk, are
  not flagged.

One warehouse holds the three series (one ingest each, one dbt run of fct_data_quality and
its parents). The property tests then run the compiled SQL of int_stale_tensors and
int_weight_discontinuities, as dbt wrote it, on generated inputs in an in-memory DuckDB:
a clean random series is never flagged; a stale copy planted at random non-adjacent steps is
always found, at those steps only."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tests.conftest import write_checkpoints
from warehouse.check import failing
from warehouse.dbt import run_dbt
from warehouse.pipeline import ingest

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 96, 128]  # log-spaced, then linear (Pythia-like)
SHAPES = {
    "gpt_neox.embed_in.weight": (64, 16),
    "gpt_neox.layers.0.input_layernorm.weight": (16,),
    "gpt_neox.layers.0.mlp.dense_h_to_4h.weight": (32, 16),
    "embed_out.weight": (64, 16),
}
FIRST_SHARD = ("gpt_neox.embed_in.weight", "gpt_neox.layers.0.input_layernorm.weight")


def _series(root: Path, seed: int) -> dict[int, dict[str, np.ndarray]]:
    return write_checkpoints(root, STEPS, SHAPES, seed=seed)


def _shard(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    """Re-save one checkpoint as two shards with an index: the first shard holds FIRST_SHARD."""
    (folder / "model.safetensors").unlink()
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for name, value in tensors.items():
        shard = "model-00001-of-00002.safetensors" if name in FIRST_SHARD else "model-00002-of-00002.safetensors"
        shards[shard][name] = torch.from_numpy(value.copy())
    for shard, ts in shards.items():
        save_file(ts, str(folder / shard))
    weight_map = {k: s for s, ts in shards.items() for k in ts}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture(scope="module")
def flagged(tmp_path_factory) -> tuple[dict[str, list], Path]:
    base = tmp_path_factory.mktemp("stale-series")
    last = STEPS[-1]
    # 205: steps 2 and 32 serve the final checkpoint, step 8 serves step 64's (a second blob)
    s205 = base / "s205"
    _series(s205, seed=1)
    for stale, served in ((2, last), (32, last), (8, 64)):
        shutil.rmtree(s205 / f"step{stale}")
        shutil.copytree(s205 / f"step{served}", s205 / f"step{stale}")
    # 206: sharded; steps 4 and 64 serve the final checkpoint's first shard
    s206 = base / "s206"
    for step, tensors in _series(s206, seed=2).items():
        _shard(s206 / f"step{step}", tensors)
    for stale in (4, 64):
        shutil.copy(s206 / f"step{last}" / "model-00001-of-00002.safetensors", s206 / f"step{stale}")
    # a discontinuity: the unembedding (lm_head.weight) scaled by 3 at step 16 (values no other
    # step holds); the other tensors are a clean random walk
    jump = base / "jump"
    tensors = _series(jump, seed=3)[16]
    tensors["embed_out.weight"] = tensors["embed_out.weight"] * 3
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, str(jump / "step16" / "model.safetensors"))
    wh = base / "w.duckdb"
    for folder in (s205, s206, jump):
        params = {"weights": {"tensors": "*"}}
        result = ingest(str(folder), warehouse=wh, probes="weights", params=params, progress=False)
        assert result.ok, result.summary()
    run_dbt(wh, "run", "--select", "+fct_data_quality")
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute(
        "select model_id, kind, step, object, issue from marts.fct_data_quality order by model_id, kind, step, object"
    ).fetchall()
    con.close()
    by_model: dict[str, list] = {}
    for model, kind, step, obj, issue in rows:
        by_model.setdefault(model.split("/")[-1], []).append((kind, step, obj, issue))
    return by_model, wh


@pytest.mark.slow  # its fixture ingests three series and runs dbt on them
def test_205_whole_checkpoints_served_twice_flag_exactly_those_steps(flagged):
    rows = flagged[0]["s205"]
    assert {(k, s) for k, s, _, _ in rows} == {("identical_checkpoint", s) for s in (2, 8, 32, 64, 128)}
    issues = {s: i for _, s, _, i in rows}
    assert issues[2].startswith("weights byte-identical to step 32 (2 other step(s)")
    assert issues[8].startswith("weights byte-identical to step 64 (1 other step(s)")


@pytest.mark.slow  # its fixture ingests three series and runs dbt on them
def test_206_stale_first_shard_flags_its_tensors_at_those_steps_only(flagged):
    rows = flagged[0]["s206"]
    assert {(k, s, o) for k, s, o, _ in rows} == {("stale_tensor", s, t) for s in (4, 64, 128) for t in FIRST_SHARD}
    issues = {(s, o): i for _, s, o, i in rows}
    assert "non-adjacent step(s) 64, 128 " in issues[(4, "gpt_neox.embed_in.weight")]
    assert "non-adjacent step(s) 4, 64 " in issues[(128, "gpt_neox.layers.0.input_layernorm.weight")]


@pytest.mark.slow  # its fixture ingests three series and runs dbt on them
def test_a_jump_against_both_neighbours_is_a_discontinuity_and_a_clean_walk_is_not(flagged):
    assert [(k, s, o) for k, s, o, _ in flagged[0]["jump"]] == [("discontinuity", 16, "lm_head.weight")]
    assert "jumps against both neighbours (steps 8 and 32)" in flagged[0]["jump"][0][3]


def test_check_fails_on_every_stale_kind_unless_downgraded():
    for kind in ("identical_checkpoint", "stale_tensor", "discontinuity"):
        assert failing(kind, stale_as_warnings=False) and not failing(kind, stale_as_warnings=True)
    assert failing("failed_job", stale_as_warnings=True) and not failing("nonfinite_input", stale_as_warnings=False)


# ---- the compiled SQL on generated series -------------------------------------------------


def _compiled(wh: Path, model: str) -> str:
    found = list((wh.parent / ".tdw-dbt" / "target" / "compiled").rglob(f"{model}.sql"))
    assert found, f"no compiled {model}.sql"
    sql = re.sub(r'"[^"]+"\."[^"]+"\."stg_weight_stats"', "stats", found[0].read_text())
    return re.sub(r'"[^"]+"\."[^"]+"\."dim_checkpoint"', "ckpt", sql)


def _run(sql: str, stats: list[tuple], checkpoints: list[tuple]) -> list[tuple]:
    """Run a compiled model with its refs replaced by the given rows."""
    con = duckdb.connect()
    stats_df = pd.DataFrame(stats, columns=["model_id", "tensor_name", "step", "l2_norm", "tensor_hash"])
    ckpt_df = pd.DataFrame(checkpoints, columns=["model_id", "step", "content_hash"])
    con.register("stats", stats_df)
    con.register("ckpt", ckpt_df)
    return sorted(con.execute(f"select model_id, step, object, kind from ({sql})").fetchall())


def _walk(seed: int, n: int, n_tensors: int) -> tuple[list[int], dict[str, list[float]]]:
    """Uneven steps and, per tensor, a drifting random walk of norms (a clean series)."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(1, 50, size=n)).tolist()
    norms = {
        f"t{i}": (1 + np.cumsum(rng.normal(rng.uniform(-0.01, 0.01), 0.01, size=n))).tolist() for i in range(n_tensors)
    }
    return steps, norms


def _rows(steps, norms, hashes=None):
    return [
        ("m", t, s, x, (hashes or {}).get((t, s), f"{t}@{s}"))
        for t, xs in norms.items()
        for s, x in zip(steps, xs, strict=True)
    ]


@pytest.mark.slow  # its fixture ingests three series and runs dbt on them
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40), n_tensors=st.integers(1, 3))
def test_a_clean_random_series_is_never_flagged(flagged, seed, n, n_tensors):
    steps, norms = _walk(seed, n, n_tensors)
    stats, ckpts = _rows(steps, norms), [("m", s, f"c{s}") for s in steps]
    for model in ("int_stale_tensors", "int_weight_discontinuities"):
        assert _run(_compiled(flagged[1], model), stats, ckpts) == [], model


@pytest.mark.slow  # its fixture ingests three series and runs dbt on them
@settings(max_examples=20, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40))
def test_a_stale_copy_at_random_non_adjacent_steps_is_always_found(flagged, data, seed, n):
    steps, norms = _walk(seed, n, 2)
    i = data.draw(st.integers(0, n - 3), label="stale index")
    j = data.draw(st.integers(i + 2, n - 1), label="served index")  # a later step's values
    norms["t0"][i] = norms["t0"][j]
    hashes = {("t0", steps[i]): f"t0@{steps[j]}"}
    stats, ckpts = _rows(steps, norms, hashes), [("m", s, f"c{s}") for s in steps]
    found = _run(_compiled(flagged[1], "int_stale_tensors"), stats, ckpts)
    assert found == sorted([("m", steps[i], "t0", "stale_tensor"), ("m", steps[j], "t0", "stale_tensor")])
    assert _run(_compiled(flagged[1], "int_weight_discontinuities"), stats, ckpts) == []
