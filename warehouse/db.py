"""The DuckDB file: opening it safely, the raw schema, idempotent job loads, the manifest.

One job is (model, checkpoint, probe, parameters). Loading it deletes the slices its frames
cover (``TableSpec.replace_by``) and inserts the new rows, and records the job in
``raw.ingest_runs``, all inside one transaction: a crash or an error leaves every earlier
job complete and no partial rows. Failed jobs are recorded in their own transaction.
Before the transaction begins, the job's frames pass the data-quality gate
(``warehouse.quality``): a job that fails it commits nothing and is recorded as failed
with the failed expectations in ``failed_expectations`` (a JSON list).
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from ingest.errors import TdwError
from ingest.schema import TableSpec
from warehouse import quality
from warehouse.faults import corrupt_frames

SCHEMAS = ("raw", "staging", "intermediate", "marts")
MANIFEST = TableSpec(
    "ingest_runs",
    (
        ("run_id", "VARCHAR"),
        ("model_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("revision", "VARCHAR"),
        ("source", "VARCHAR"),
        ("probe", "VARCHAR"),
        ("probe_version", "VARCHAR"),
        ("params", "VARCHAR"),
        ("params_hash", "VARCHAR"),
        ("content_hash", "VARCHAR"),
        ("code_version", "VARCHAR"),
        ("status", "VARCHAR"),
        ("started_at", "TIMESTAMPTZ"),
        ("ended_at", "TIMESTAMPTZ"),
        ("rows", "VARCHAR"),
        ("error", "VARCHAR"),
        ("failed_expectations", "VARCHAR"),
        ("tokens_seen", "BIGINT"),
    ),
    ("run_id",),
    (),
    "One row per ingest job attempt: what ran, on what, with what result.",
)
DUCKDB_MAGIC = b"DUCK"


def check_file(path: Path) -> None:
    """A clean error if ``path`` exists and is not a DuckDB database file."""
    if path.is_dir():
        raise TdwError(f"warehouse path {path} is a directory, not a DuckDB file")
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            head = f.read(12)
        if head[8:12] != DUCKDB_MAGIC:
            raise TdwError(f"{path} is not a DuckDB file")


def _holder(msg: str) -> str:
    """'process N (its command line)' from DuckDB's lock error, as far as it can be told."""
    m = re.search(r"PID (\d+)", msg)
    if not m:
        return "another process"
    try:
        cmd = Path(f"/proc/{m.group(1)}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = ""
    return f"process {m.group(1)}" + (f" ({cmd[:120]})" if cmd else "")


def connect(path: Path, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; if another process holds its lock, retry for up to ``wait`` seconds."""
    path = Path(path)
    check_file(path)
    if read_only and not path.exists():
        raise TdwError(f"no warehouse at {path} (run `tdw ingest` and `tdw build` first)")
    if not read_only:
        if path.name.endswith(".serving.duckdb"):
            raise TdwError(f"{path} is a serving snapshot: it is only ever written by publishing")
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            msg = str(e).splitlines()[0]
            if "lock" not in msg.lower():
                raise TdwError(f"cannot open warehouse {path}: {msg}") from None
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g} s" if wait else ""
                raise TdwError(
                    f"warehouse {path} is locked by {_holder(msg)}{waited}: let it finish, close "
                    "it (or its BI connection), or pass --wait SECONDS"
                ) from None
            if not told:
                sys.stderr.write(f"waiting up to {wait:g} s for the lock on {path} held by {_holder(msg)}\n")
                sys.stderr.flush()
                told = True
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        except duckdb.Error as e:
            raise TdwError(f"cannot open warehouse {path}: {str(e).splitlines()[0]}") from None


def _ddl(spec: TableSpec, name: str | None = None) -> str:
    cols = ", ".join(f'"{c}" {t}' for c, t in spec.columns)
    key = ", ".join(f'"{k}"' for k in spec.key)
    pk = f", PRIMARY KEY ({key})" if spec.indexed else ""
    return f'CREATE TABLE IF NOT EXISTS raw."{name or spec.name}" ({cols}{pk})'


def _drop_index(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Rebuild an unindexed table that an older version created with its PRIMARY KEY
    (DuckDB cannot drop a constraint in place); one transaction, rows unchanged."""
    has_pk = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE schema_name='raw' AND table_name=? "
        "AND constraint_type='PRIMARY KEY'",
        [spec.name],
    ).fetchone()[0]
    if spec.indexed or not has_pk:
        return
    tmp = f"{spec.name}__unindexed"
    con.execute("BEGIN TRANSACTION")
    try:
        have = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema='raw' AND table_name=? "
                "ORDER BY ordinal_position",
                [spec.name],
            ).fetchall()
        ]
        con.execute(f'DROP TABLE IF EXISTS raw."{tmp}"')
        con.execute(_ddl(spec, tmp))
        cols = ", ".join(f'"{c}"' for c in have if c in spec.column_names)
        con.execute(f'INSERT INTO raw."{tmp}" ({cols}) SELECT {cols} FROM raw."{spec.name}"')
        con.execute(f'DROP TABLE raw."{spec.name}"')
        con.execute(f'ALTER TABLE raw."{tmp}" RENAME TO "{spec.name}"')
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def ensure_tables(con: duckdb.DuckDBPyConnection, specs: list[TableSpec]) -> None:
    """Schemas, the manifest and every declared raw table; new columns are added in place."""
    for s in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    for spec in [MANIFEST, *specs]:
        con.execute(_ddl(spec))
        _drop_index(con, spec)
        have = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema='raw' AND table_name=?",
                [spec.name],
            ).fetchall()
        }
        for c, t in spec.columns:
            if c not in have:
                con.execute(f'ALTER TABLE raw."{spec.name}" ADD COLUMN "{c}" {t}')
        if spec.description:
            con.execute(f"COMMENT ON TABLE raw.\"{spec.name}\" IS '{spec.description.replace(chr(39), '')}'")


def _manifest_row(
    job: dict, status: str, rows: dict | None, error: str | None, failed_expectations: list[str] | None = None
) -> pd.DataFrame:
    row = {c: None for c in MANIFEST.column_names}
    row.update({k: v for k, v in job.items() if k in row})
    row.update(
        run_id=job.get("run_id") or str(uuid.uuid4()),
        status=status,
        ended_at=datetime.now(UTC),
        rows=json.dumps(rows) if rows is not None else None,
        error=error,
        params=json.dumps(job.get("params", {}), sort_keys=True, default=str),
        failed_expectations=json.dumps(failed_expectations) if failed_expectations else None,
    )
    return pd.DataFrame([row])[MANIFEST.column_names]


def _array_columns(frame: pd.DataFrame) -> list[str]:
    """The columns holding one numpy array per row (list columns such as the MSD sample)."""
    import numpy as np

    return [
        c
        for c in frame.columns
        if frame[c].dtype == object and len(frame) and all(isinstance(v, np.ndarray) for v in frame[c])
    ]


def _arrow(frame: pd.DataFrame, array_columns: list[str]):
    """``frame`` as an Arrow table, each array column as one list array over the rows'
    concatenated values (DuckDB then reads it without visiting each element in Python)."""
    import numpy as np
    import pyarrow as pa

    arrays = {}
    for c in frame.columns:
        if c in array_columns:
            vals = [v.reshape(-1) for v in frame[c]]
            offsets = np.concatenate([[0], np.cumsum([v.size for v in vals])]).astype(np.int64)
            arrays[c] = pa.LargeListArray.from_arrays(offsets, np.concatenate(vals))
        else:
            arrays[c] = pa.Array.from_pandas(frame[c])
    return pa.table(arrays)


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    data = frame
    if arrays := _array_columns(frame):
        import pyarrow as pa

        try:
            data = _arrow(frame, arrays)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):  # mixed values: DuckDB's own conversion
            data = frame
    con.register("_tdw_frame", data)
    try:
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        con.execute(f'INSERT INTO raw."{table}" ({cols}) SELECT {cols} FROM _tdw_frame')
    finally:
        con.unregister("_tdw_frame")


def _first_load(con, frames: dict[str, pd.DataFrame]) -> bool:
    """True when the job's rows are of one (model, step) that no successful job has loaded:
    every raw row is inserted by ``load_job`` in the transaction that records its success,
    so no table holds a row of that checkpoint and there is nothing to delete."""
    pairs = set()
    for f in frames.values():
        if len(f):
            m, s = f["model_id"].to_numpy(), f["step"].to_numpy()
            if not ((m == m[0]).all() and (s == s[0]).all()):
                return False
            pairs.add((m[0], int(s[0])))
    if len(pairs) != 1:
        return False
    (model_id, step) = pairs.pop()
    return not con.execute(
        "SELECT 1 FROM raw.ingest_runs WHERE model_id=? AND step=? AND status='success' LIMIT 1", [model_id, step]
    ).fetchall()


def _delete_slices(con, spec: TableSpec, frame: pd.DataFrame) -> None:
    """Delete the rows of the slices ``frame`` covers. A job's rows share one model and
    step, so those are compared with constants (DuckDB skips every row group whose min/max
    rules them out instead of joining the whole table); the ``replace_by`` columns against
    the frame's distinct values."""
    pairs = frame[["model_id", "step"]].drop_duplicates()
    if len(pairs) != 1:  # not one job's rows: the general join
        slice_cols = ["model_id", "step", *spec.replace_by]
        con.register("_tdw_slices", frame[slice_cols].drop_duplicates())
        cond = " AND ".join(f't."{c}" = s."{c}"' for c in slice_cols)
        con.execute(f'DELETE FROM raw."{spec.name}" t WHERE EXISTS (SELECT 1 FROM _tdw_slices s WHERE {cond})')
        con.unregister("_tdw_slices")
        return
    model_id, step = pairs.iloc[0]
    where, args = "t.model_id = ? AND t.step = ?", [model_id, int(step)]
    if spec.replace_by:
        con.register("_tdw_slices", frame[list(spec.replace_by)].drop_duplicates())
        cond = " AND ".join(f't."{c}" = s."{c}"' for c in spec.replace_by)
        where += f" AND EXISTS (SELECT 1 FROM _tdw_slices s WHERE {cond})"
    try:
        con.execute(f'DELETE FROM raw."{spec.name}" t WHERE {where}', args)
    finally:
        if spec.replace_by:
            con.unregister("_tdw_slices")


def load_job(
    con,
    specs: list[TableSpec],
    frames: dict[str, pd.DataFrame],
    job: dict,
    before_commit=None,
    probe=None,
    expectations=None,
) -> dict[str, int]:
    """Check one job's frames (the quality gate), then replace its rows in every table it
    produced and record it, atomically. The expectations are ``expectations`` if given, else
    ``probe``'s, else those of the registered probe named ``job["probe"]``, else the
    TableSpecs' own (key unique and not NULL); a failure raises ``QualityError``."""
    by_name = {s.name: s for s in specs}
    unknown = set(frames) - set(by_name)
    if unknown:
        raise TdwError(f"probe produced undeclared tables: {sorted(unknown)}")
    frames = corrupt_frames(job, frames)
    if expectations is None:
        probe = probe or quality.registered_probe(job.get("probe"))
        expectations = quality.declared(probe, frames, job, specs)
    quality.validate_frames(expectations, frames, job.get("probe", ""))
    counts = {name: len(f) for name, f in frames.items()}
    con.execute("BEGIN TRANSACTION")
    try:
        fresh = _first_load(con, frames)
        for name, frame in frames.items():
            spec = by_name[name]
            frame = frame[spec.column_names]
            if len(frame):
                if not fresh:
                    _delete_slices(con, spec, frame)
                _insert(con, name, frame)
        _insert(con, MANIFEST.name, _manifest_row(job, "success", counts, None))
        if before_commit:
            before_commit()
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # the failure already aborted the transaction
            pass
        raise
    return counts


def record_failure(con, job: dict, error: str | BaseException) -> None:
    """Record a failed attempt: ``error`` is the message or the exception (a QualityError's
    failed expectations go to ``failed_expectations``)."""
    failed = getattr(error, "expectations", None)
    _insert(con, MANIFEST.name, _manifest_row(job, "failed", None, str(error), failed))


def done_hashes(con, model_id: str, versions: dict[tuple, str]) -> dict[tuple, str]:
    """For each (step, probe, params hash) in ``versions`` (mapped to the probe version it
    would run with): the content hash its latest successful run saw, when that run used
    the same probe version. A job whose checkpoint still has that hash would change nothing."""
    rows = con.execute(  # fetchall: DuckDB 2 refuses new statements while a result is unfinished
        "SELECT step, probe, params_hash, probe_version, content_hash FROM raw.ingest_runs "
        "WHERE model_id=? AND status='success' "
        "QUALIFY row_number() OVER (PARTITION BY step, probe, params_hash ORDER BY ended_at DESC) = 1",
        [model_id],
    ).fetchall()
    return {(s, p, h): c for s, p, h, v, c in rows if versions.get((s, p, h)) == v}


def already_done(con, job: dict) -> bool:
    """True when the latest successful run of this probe with these parameters on this
    checkpoint saw the same content and probe version: rerunning it would change nothing."""
    key = (job["step"], job["probe"], job["params_hash"])
    return done_hashes(con, job["model_id"], {key: job["probe_version"]}).get(key) == job["content_hash"]
