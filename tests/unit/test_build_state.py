"""Which models `tdw build` selects (warehouse.build_state): the models downstream of the raw
tables whose rows changed since the last successful build, never through
int_checkpoint_versions, never views; everything when the state cannot be trusted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from warehouse import build_state, db

# a dbt manifest's shape, cut down to what the selection reads
MANIFEST = {
    "sources": {
        "source.tdw.raw_core.ingest_runs": {"name": "ingest_runs"},
        "source.tdw.raw_weights.weight_sample": {"name": "weight_sample"},
        "source.tdw.raw_params.displacement": {"name": "displacement"},
    },
    "nodes": {
        f"model.tdw.{n}": {"name": n, "config": {"materialized": m}}
        for n, m in [
            ("stg_ingest_runs", "view"),
            ("int_checkpoint_versions", "view"),
            ("dim_checkpoint", "table"),
            ("stg_weight_sample", "view"),
            ("int_msd", "incremental"),
            ("fct_msd", "incremental"),
            ("stg_displacement", "view"),
            ("fct_displacement", "incremental"),
            ("fct_phase_alignment", "table"),
        ]
    },
    "child_map": {
        "source.tdw.raw_core.ingest_runs": ["model.tdw.stg_ingest_runs"],
        "model.tdw.stg_ingest_runs": ["model.tdw.int_checkpoint_versions", "model.tdw.dim_checkpoint"],
        "model.tdw.int_checkpoint_versions": ["model.tdw.int_msd", "model.tdw.fct_displacement"],
        "source.tdw.raw_weights.weight_sample": ["model.tdw.stg_weight_sample"],
        "model.tdw.stg_weight_sample": ["model.tdw.int_msd", "test.tdw.unique_stg"],
        "model.tdw.int_msd": ["model.tdw.fct_msd"],
        "model.tdw.fct_msd": ["model.tdw.fct_phase_alignment"],
        "source.tdw.raw_params.displacement": ["model.tdw.stg_displacement"],
        "model.tdw.stg_displacement": ["model.tdw.fct_displacement"],
        "model.tdw.fct_displacement": ["model.tdw.fct_phase_alignment"],
    },
}


def add_run(wh: Path, probe: str, rows: str | None, status: str = "success") -> str:
    run_id = str(uuid.uuid4())
    con = db.connect(wh)
    db.ensure_tables(con, [])
    con.execute(
        "insert into raw.ingest_runs (run_id, model_id, step, probe, status, rows) values (?, 'm', 0, ?, ?, ?)",
        [run_id, probe, status, rows],
    )
    con.close()
    return run_id


@pytest.fixture
def warehouse(tmp_path) -> tuple[Path, Path]:
    wh, work = tmp_path / "w.duckdb", tmp_path / "work"
    (work / "target").mkdir(parents=True)
    (work / "target" / "manifest.json").write_text(json.dumps(MANIFEST))
    add_run(wh, "weights", json.dumps({"weight_sample": 2}))
    return wh, work


def built(wh: Path, work: Path) -> None:
    """What a successful build records."""
    build_state.save(wh, work, build_state.plan(wh, work)[1])


def test_first_build_builds_everything_then_nothing_is_left(warehouse):
    wh, work = warehouse
    assert build_state.plan(wh, work)[0] is None
    built(wh, work)
    assert build_state.plan(wh, work)[0] == []
    add_run(wh, "weights", None, status="failed")  # a failed job changed no rows
    assert build_state.plan(wh, work)[0] == []


def test_new_rows_select_their_downstream_models_only(warehouse):
    wh, work = warehouse
    built(wh, work)
    add_run(wh, "weights", json.dumps({"weight_sample": 2, "weight_hist": 0}))
    # not fct_displacement (it reads the new run ids only through int_checkpoint_versions); no views
    assert build_state.plan(wh, work)[0] == ["dim_checkpoint", "fct_msd", "fct_phase_alignment", "int_msd"]
    add_run(wh, "displacement", json.dumps({"displacement": 5}))
    assert "fct_displacement" in build_state.plan(wh, work)[0]


def test_untrusted_state_builds_everything(warehouse, monkeypatch):
    wh, work = warehouse
    built(wh, work)
    add_run(wh, "weights", None)  # a run whose tables the manifest does not name
    assert build_state.plan(wh, work)[0] is None
    built(wh, work)
    con = db.connect(wh)
    con.execute("delete from raw.ingest_runs where rowid = (select min(rowid) from raw.ingest_runs)")
    con.close()
    assert build_state.plan(wh, work)[0] is None  # a recorded run is gone: another warehouse
    built(wh, work)
    monkeypatch.setattr(build_state, "project_hash", lambda: "another project")
    assert build_state.plan(wh, work)[0] is None
