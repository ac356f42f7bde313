"""Incremental builds give the tables a full build gives, whatever happened in between.

A seeded random history on small synthetic checkpoints (the tensor-only probes, so it runs
fast): checkpoints ingested in random order (some in the middle of a series already
built), re-ingests that change nothing, forced re-ingests, a checkpoint whose content
changed, a forced re-ingest with fewer batch sizes (its slice now has fewer rows: stale rows
must go), and a job the quality gate fails — with an incremental build after each batch.
At the end a copy of the warehouse is rebuilt with ``--full-refresh`` and every table of
the intermediate and marts schemas is compared row by row (floats to 1e-9 relative: the
running sums are added in another order). The streaming MSD is also compared with the
previous, from-scratch formula (a window over every checkpoint) to 1e-9 relative.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_checkpoints
from warehouse.dbt import run_dbt
from warehouse.pipeline import ingest

STEPS = [0, 1, 2, 4, 8, 16, 32, 64]
SHAPES = {"embed_out.weight": (64, 16), "gpt_neox.embed_in.weight": (64, 16)}
PROBES = "weights,covariance,displacement"
PARAMS = {"weights": {"tensors": "unembed,embed", "msd_sample": 256}}
# the marts of the tensor-only probes (graph and residual marts have no rows here)
EXCLUDE = [
    "path:models/marts/graph",
    "path:models/intermediate/graph",
    "path:models/marts/residual",
    "path:models/intermediate/residual",
    "fct_phases",
]

OLD_MSD = """
with values_by_index as (
    select model_id, tensor_name, step, unnest(sampled_values) as w,
           unnest(range(len(sampled_values))) as k
    from staging.stg_weight_sample
), cumulative as (
    select model_id, tensor_name, step,
           sum(w) over (partition by model_id, tensor_name, k order by step
                        rows between unbounded preceding and current row) as s_cum
    from values_by_index
)
select model_id, tensor_name, step, var_samp(s_cum) as msd, count(*) as n_sampled
from cumulative group by all order by all
"""


def dbt_build(wh: Path, full_refresh: bool = False) -> None:
    run_dbt(
        wh,
        "build",
        "--exclude",
        *EXCLUDE,
        "--indirect-selection",
        "cautious",
        *(["--full-refresh"] if full_refresh else []),
    )


def tables(con) -> list[str]:
    return [
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema in ('intermediate', 'marts') order by all"
        ).fetchall()
    ]


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame, name: str) -> None:
    assert list(a.columns) == list(b.columns), name
    assert len(a) == len(b), f"{name}: {len(a)} rows incremental, {len(b)} full"
    if not len(a):
        return
    nested = [c for c in a.columns if a[c].map(lambda v: isinstance(v, (list, np.ndarray))).any()]
    floats = [c for c in a.columns if c not in nested and a[c].dtype.kind == "f"]
    keys = [c for c in a.columns if c not in nested and c not in floats]

    def ordered(x: pd.DataFrame) -> pd.DataFrame:  # floats enter the order to 8 digits
        rounded = {f"_{c}": x[c].map(lambda v: float(f"{v:.8g}")) for c in floats}
        x = x.assign(**rounded).sort_values([*keys, *rounded], kind="stable")
        return x.drop(columns=list(rounded)).reset_index(drop=True)

    a, b = ordered(a), ordered(b)
    pd.testing.assert_frame_equal(a[keys], b[keys], obj=name)
    for c in floats:
        np.testing.assert_allclose(
            a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-9, atol=1e-15, equal_nan=True, err_msg=f"{name}.{c}"
        )
    for c in nested:
        for x, y in zip(a[c], b[c]):
            if _missing(x) or _missing(y):
                assert _missing(x) and _missing(y), f"{name}.{c}"
                continue
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype.kind in "fc" or y.dtype.kind in "fc":
                np.testing.assert_allclose(
                    x.astype(float), y.astype(float), rtol=1e-9, atol=1e-15, err_msg=f"{name}.{c}"
                )
            else:
                assert repr(x.tolist()) == repr(y.tolist()), f"{name}.{c}"


def _missing(v) -> bool:
    return v is None or (not isinstance(v, (list, np.ndarray)) and bool(pd.isna(v)))


NONEMPTY = ("marts.fct_msd", "marts.fct_weight_density", "marts.fct_displacement", "marts.fct_covariance_rank")


def assert_full_refresh_agrees(wh: Path, tmp: Path, nonempty: tuple[str, ...] = NONEMPTY) -> None:
    full = tmp / "full.duckdb"
    shutil.copyfile(wh, full)
    dbt_build(full, full_refresh=True)
    inc, ref = duckdb.connect(str(wh), read_only=True), duckdb.connect(str(full), read_only=True)
    try:
        assert tables(inc) == tables(ref)
        for t in nonempty:
            assert inc.execute(f"select count(*) from {t}").fetchone()[0] > 0, t
        for t in tables(inc):
            assert_same_table(inc.execute(f"select * from {t}").df(), ref.execute(f"select * from {t}").df(), t)
        old = inc.execute(OLD_MSD).df()
        new = inc.execute(
            "select model_id, tensor_name, step, msd, n_sampled from intermediate.int_msd order by all"
        ).df()
        pd.testing.assert_frame_equal(old.drop(columns="msd"), new.drop(columns="msd"))
        np.testing.assert_allclose(new.msd, old.msd, rtol=1e-9)
    finally:
        inc.close()
        ref.close()
    full.unlink()


def run(root: Path, wh: Path, steps, **kw) -> None:
    """Ingest ``steps`` (in the order given, one job list each) with the tensor-only probes."""
    params = {**PARAMS, **kw.pop("params", {})}
    for s in steps:
        ingest(
            str(root),
            revisions=f"step{s}",
            probes=kw.get("probes", PROBES),
            warehouse=wh,
            progress=False,
            params=params,
            force=kw.get("force", False),
        )


@pytest.mark.parametrize("seed", [0])
def test_incremental_builds_match_a_full_refresh(tmp_path, seed, monkeypatch):
    rng = random.Random(seed)
    root = tmp_path / "run"
    write_checkpoints(root, STEPS, SHAPES, seed)
    wh = tmp_path / "w.duckdb"
    order = STEPS[:]
    rng.shuffle(order)
    first, later = order[:4], order[4:]

    run(root, wh, first)  # a random half, in random order
    dbt_build(wh)
    assert_full_refresh_agrees(wh, tmp_path)

    run(root, wh, later)  # the rest: some land mid-series
    run(root, wh, rng.sample(first, 2))  # re-ingests: nothing to do
    run(root, wh, rng.sample(first, 1), force=True)  # forced: new run ids, same rows
    dbt_build(wh)

    changed = rng.choice(STEPS[1:])  # a checkpoint's content changed
    write_checkpoints(root, [changed], SHAPES, seed + 100)
    run(root, wh, [changed], probes="weights")
    fewer = rng.choice([s for s in STEPS if s != changed])  # fewer batch sizes now: stale rows go
    run(root, wh, [fewer], probes="covariance", force=True, params={"covariance": {"batch_sizes": "16,32"}})
    monkeypatch.setenv("TDW_FAULT_CORRUPT", "weights:weight_stats:duplicate")
    run(root, wh, [rng.choice(STEPS)], probes="weights", force=True)  # fails the gate: no change
    monkeypatch.delenv("TDW_FAULT_CORRUPT")
    dbt_build(wh)

    con = duckdb.connect(str(wh), read_only=True)
    failed = con.execute("select count(*) from raw.ingest_runs where status = 'failed'").fetchone()[0]
    n_fewer = con.execute(
        "select count(distinct batch_size) from marts.fct_covariance_rank where step = ?", [fewer]
    ).fetchone()[0]
    con.close()
    assert failed == 1 and n_fewer == 2
    assert_full_refresh_agrees(wh, tmp_path)
    assert not os.environ.get("TDW_FAULT_CORRUPT")
