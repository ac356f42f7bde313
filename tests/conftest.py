"""Session fixtures shared by the test tiers.

- ``toy_suite``: the real toy suite (default training spec, as `tdw demo` trains it),
  trained once per session into a temporary folder.
- ``built_warehouse``: that suite ingested with every registered probe on a subset of
  checkpoints, then ``dbt build`` (models and tests); the DuckDB path.
- ``data_dir`` (autouse): pytest's temporary root as ``TDW_DATA_DIR``, so the CLI may write
  anywhere under it and nowhere else.
- ``make_checkpoints``: a factory writing synthetic ``step<N>/`` checkpoints (config.json
  and model.safetensors with seeded random tensors), for fast tests that need no training.

The fast tier (``make test-fast``: ``-m "not slow"``) leaves out every test that trains or
builds: :func:`pytest_collection_modifyitems` marks ``slow`` each test that uses the toy suite
or the built warehouse (directly or through another fixture) and each test of a module that
trains or runs ``dbt build`` itself, so a new test of that kind needs no marker of its own.
The other tests that cost more than a few seconds each carry an explicit ``pytest.mark.slow``
with the reason beside it: a dbt build through the CLI, killing and resuming a process,
starting Ray, filling a hub cache, or whole ingests in child processes (each child imports
torch and Great Expectations anew). A family of cases that each start a child process (a
refusal per hostile input, per command) is parametrized with :func:`sampled`: the fast tier
runs an evenly spread sample of it, the full suite every case.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

TOY_MODELS = ("toy/neox-2l", "toy/neox-3l")

SLOW_FIXTURES = {"toy_suite", "built_warehouse"}
# what a test module does that takes minutes: train the toy suite or build the marts with dbt
SLOW_SOURCE = ("train_suite(", "from warehouse.dbt import build")


def pytest_collection_modifyitems(config, items):
    heavy: dict[Path, bool] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in heavy:
            heavy[path] = any(s in path.read_text() for s in SLOW_SOURCE)
        if heavy[path] or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def sampled(values, every: int = 3, unpack: bool = False) -> list:
    """Parameters of a family of child-process cases: every ``every``-th value (from the
    first) stays in the fast tier, the others are marked slow. ``unpack``: each value is the
    tuple of several argnames."""

    def slow(v):
        return pytest.param(*v, marks=pytest.mark.slow) if unpack else pytest.param(v, marks=pytest.mark.slow)

    return [v if i % every == 0 else slow(v) for i, v in enumerate(values)]


def _shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder shared by every pytest-xdist worker of this run (built once, under a lock)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / name


def _build_once(tmp_path_factory, name: str, build) -> Path:
    from filelock import FileLock

    folder = _shared_dir(tmp_path_factory, name)
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / ".done").write_text("ok")
    return folder


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    """Everything the tests write lies under pytest's temporary root (shared by the xdist
    workers): it is the data directory that `tdw` confines writes to (warehouse.paths),
    for in-process CLI calls and the subprocesses that inherit the environment."""
    root = _shared_dir(tmp_path_factory, "x").parent.resolve()
    os.environ["TDW_DATA_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def toy_suite(tmp_path_factory) -> Path:
    from ingest.toy.train import train_suite

    return _build_once(tmp_path_factory, "toy-suite", lambda root: train_suite(root, progress=False))


def toy_revisions(root: Path, model: str, every: int = 3) -> str:
    """A subset of a toy model's checkpoints (every ``every``-th, plus the last)."""
    meta = json.loads((root / model.split("/")[1] / "suite.json").read_text())
    steps = meta["schedule"]
    chosen = sorted(set(steps[::every]) | {steps[-1]})
    return ",".join(f"step{s}" for s in chosen)


@pytest.fixture(scope="session")
def built_warehouse(toy_suite, tmp_path_factory) -> Path:
    from warehouse.dbt import build
    from warehouse.pipeline import ingest

    def make(folder: Path) -> None:
        wh = folder / "warehouse.duckdb"
        for model in TOY_MODELS:
            result = ingest(
                model, revisions=toy_revisions(toy_suite, model), warehouse=wh, toy_root=toy_suite, progress=False
            )
            assert result.ok, result.summary()
        build(wh)

    return _build_once(tmp_path_factory, "built-warehouse", make) / "warehouse.duckdb"


def write_checkpoints(
    root: Path, steps: list[int], shapes: dict[str, tuple[int, ...]], seed: int = 0, drift: float = 0.05
) -> dict[int, dict[str, np.ndarray]]:
    """Synthetic GPT-NeoX-named checkpoints whose tensors random-walk over steps."""
    import torch
    from safetensors.torch import save_file
    from transformers import GPTNeoXConfig

    rng = np.random.default_rng(seed)
    state = {k: rng.normal(0, 0.02, s).astype(np.float32) for k, s in shapes.items()}
    vocab, width = shapes.get("embed_out.weight", (64, 16))
    written = {}
    for step in steps:
        folder = root / f"step{step}"
        folder.mkdir(parents=True, exist_ok=True)
        GPTNeoXConfig(
            vocab_size=vocab, hidden_size=width, num_hidden_layers=1, num_attention_heads=2, intermediate_size=4 * width
        ).to_json_file(folder / "config.json")
        save_file({k: torch.from_numpy(v.copy()) for k, v in state.items()}, str(folder / "model.safetensors"))
        written[step] = {k: v.copy() for k, v in state.items()}
        state = {
            k: (v + rng.normal(0, drift * 0.02, v.shape) + 0.001 * np.sign(v)).astype(np.float32)
            for k, v in state.items()
        }
    return written


@pytest.fixture
def make_checkpoints(tmp_path):
    def make(steps=(0, 1, 2, 4, 8, 16), shapes=None, seed=0, name="run"):
        shapes = shapes or {
            "embed_out.weight": (64, 16),
            "gpt_neox.embed_in.weight": (64, 16),
            "gpt_neox.layers.0.mlp.dense_h_to_4h.weight": (32, 16),
        }
        root = tmp_path / name
        tensors = write_checkpoints(root, list(steps), shapes, seed)
        return root, tensors

    return make
