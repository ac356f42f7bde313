"""The hub source, offline: a Hugging Face cache laid out as the hub client writes it
(refs/<branch> -> commit, snapshots/<commit>/files) serves `tdw ingest <repo id>` with
HF_HUB_OFFLINE=1, exactly as revisions downloaded earlier are served on a cluster node
without network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write_checkpoints


def make_cache(cache: Path, repo: str, steps: list[int]) -> None:
    local = cache.parent / "ckpts"
    write_checkpoints(local, steps, {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)})
    base = cache / ("models--" + repo.replace("/", "--"))
    for i, step in enumerate(steps):
        commit = f"{i + 1:040x}"
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / f"step{step}").write_text(commit)
        shutil.copytree(local / f"step{step}", base / "snapshots" / commit)


def tdw(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    return subprocess.run([str(Path(sys.executable).parent / "tdw"), *args], capture_output=True, text=True, env=env)


@pytest.mark.slow  # fills a hub cache
def test_hub_repo_offline_from_cache(tmp_path):
    cache = tmp_path / "hub"
    make_cache(cache, "EleutherAI/pythia-toy", [0, 1000, 2000, 512])
    wh = tmp_path / "w.duckdb"
    proc = tdw(
        "ingest",
        "EleutherAI/pythia-toy",
        "--revisions",
        "step512,step1000",
        "--probes",
        "weights",
        "--warehouse",
        str(wh),
        cache=cache,
    )
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(wh), read_only=True)
    runs = con.execute("select step, source, revision, status from raw.ingest_runs order by step").fetchall()
    con.close()
    assert runs == [(512, "hub", "step512", "success"), (1000, "hub", "step1000", "success")]

    proc = tdw(
        "ingest",
        "EleutherAI/pythia-toy",
        "--revisions",
        "all",
        "--probes",
        "weights",
        "--warehouse",
        str(wh),
        cache=cache,
    )
    assert proc.returncode == 0 and "4 checkpoints, 2 jobs loaded, 2 unchanged" in proc.stdout, proc.stdout


def test_hub_revision_not_cached_is_a_clean_error(tmp_path):
    cache = tmp_path / "hub"
    make_cache(cache, "EleutherAI/pythia-toy", [0])
    proc = tdw(
        "ingest",
        "EleutherAI/pythia-toy",
        "--revisions",
        "step7",
        "--warehouse",
        str(tmp_path / "w.duckdb"),
        cache=cache,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: revision(s) not found: step7")
    assert "Traceback" not in proc.stderr and not (tmp_path / "w.duckdb").exists()


@pytest.mark.slow  # fills a hub cache
def test_load_model_from_hub_cache(tmp_path):
    """A complete checkpoint (every parameter of its architecture) loads from the cache; one
    with only the embeddings would be a partly random model and is refused (issue 12)."""
    from tests.faults.tinymodel import make_suite

    cache = tmp_path / "hub"
    make_cache(cache, "EleutherAI/pythia-toy", [0])
    snap = next((cache / "models--EleutherAI--pythia-toy" / "snapshots").iterdir())
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    partial = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ingest.sources import open_source; open_source('EleutherAI/pythia-toy').checkpoint(0).load_model()",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert partial.returncode != 0 and "weights lack" in partial.stderr
    shutil.rmtree(snap)
    shutil.copytree(make_suite(tmp_path / "full", steps=(0,)) / "step0", snap)
    code = (
        "from ingest.sources import open_source; m = open_source('EleutherAI/pythia-toy')"
        ".checkpoint(0).load_model(); print(type(m).__name__, m.lm_head.weight.shape[0])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["GPTNeoXForCausalLM", "64"]
