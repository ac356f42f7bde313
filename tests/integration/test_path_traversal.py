"""Path traversal through the CLI: every command that writes refuses a path outside the data
directory with a one-line error and exit code 1, and writes nothing outside; model ids and
tensor names from checkpoints never become paths outside the folder they are written in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import sampled, write_checkpoints
from warehouse.snapshot import snapshot_path

TDW = str(Path(sys.executable).parent / "tdw")
SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}


@pytest.fixture
def dirs(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (data / "link").symlink_to(outside, target_is_directory=True)
    write_checkpoints(data / "run", [0, 1], SHAPES)
    return data, outside


def tdw(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TDW_DATA_DIR=str(data))
    return subprocess.run([TDW, *args], cwd=data, env=env, capture_output=True, text=True)


def everything_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


ELSEWHERE = "/tmp/tdw-elsewhere-never-written"
ATTEMPTS = [
    ("ingest", "run", "--probes", "weights", "--warehouse", "../../etc/x.duckdb"),
    ("ingest", "run", "--probes", "weights", "--warehouse", "../outside/w.duckdb"),
    ("ingest", "run", "--probes", "weights", "--warehouse", "link/w.duckdb"),
    ("build", "--warehouse", "link/w.duckdb"),
    ("check", "--warehouse", "../outside/w.duckdb"),
    ("publish", "--warehouse", "link/w.duckdb"),
    ("docs", "--warehouse", "w.duckdb", "--out", "../outside/docs"),
    ("report", "--models", "toy/neox-2l", "--out", f"{ELSEWHERE}/report.html"),
    ("figures", "--out", "link/figures"),
    ("toy-suite", "--out", "../outside/toy-suite", "--steps", "2"),
    ("demo", "--data-dir", "../outside/demo"),
]


@pytest.mark.parametrize("args", sampled(ATTEMPTS), ids=[" ".join(a) for a in ATTEMPTS])
def test_writes_outside_the_data_directory_are_refused(dirs, args):
    data, outside = dirs
    before = everything_under(data)
    proc = tdw(data, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "outside the data directory" in lines[0], proc.stderr
    assert everything_under(outside) == [] and not Path(ELSEWHERE).exists()
    assert everything_under(data) == before


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_the_same_commands_write_inside(dirs):
    data, outside = dirs
    proc = tdw(data, "ingest", "run", "--probes", "weights", "--warehouse", "wh/w.duckdb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (data / "wh" / "w.duckdb").exists() and everything_under(outside) == []


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_tensor_names_with_traversal_are_only_data(dirs):
    """A checkpoint header naming a tensor ``../../outside/evil.weight``: ingested as a name
    in the tables, never used as a path."""
    import torch
    from safetensors.torch import load_file, save_file

    data, outside = dirs
    path = data / "run" / "step1" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["../../outside/evil.weight"] = torch.ones(4, 4)
    save_file(tensors, str(path))
    proc = tdw(data, "ingest", "run", "--probes", "weights", "--tensors", "*", "--warehouse", "w.duckdb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    con = duckdb.connect(str(data / "w.duckdb"), read_only=True)
    names = {r[0] for r in con.execute("select tensor_name from raw.weight_stats where step = 1").fetchall()}
    con.close()
    assert "../../outside/evil.weight" in names
    assert everything_under(outside) == []


def test_model_ids_with_traversal_become_one_file_name(dirs, built_warehouse):
    """Figures are named by model id: an id ``../../outside/evil`` stays inside --out."""
    data, outside = dirs
    wh = data / "w.duckdb"
    shutil.copyfile(built_warehouse, wh)
    shutil.copyfile(snapshot_path(built_warehouse), snapshot_path(wh))
    con = duckdb.connect(str(snapshot_path(wh)))
    for table in ("fct_msd", "fct_weight_density", "fct_bifurcation"):
        con.execute(f"update marts.{table} set model_id = '../../outside/evil' where model_id = 'toy/neox-2l'")
    con.close()
    proc = tdw(data, "figures", "--warehouse", "w.duckdb", "--out", "figures")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = everything_under(data / "figures")
    assert {p.parent.resolve() for p in written} == {(data / "figures").resolve()}
    assert any("outside_evil" in p.name for p in written) and len(written) == 4
    assert everything_under(outside) == []
