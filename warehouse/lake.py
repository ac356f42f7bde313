"""The Parquet lake: the interchange between probe workers and the single DuckDB writer.

A worker that finished one job (model, checkpoint, probe, parameters) writes its tables
here; one loader moves them into DuckDB, one transaction a job, so DuckDB keeps a single
writer however many workers compute. Layout (Hive-style, readable by any engine):

    <lake>/<probe>/model=<quoted model id>/step=<n>/params=<params hash>/<table>.parquet
                                                                       /_job.json

``_job.json`` holds the job's manifest fields (run id, content hash, probe version,
parameters, code version, times), its status and error, and each file's row count. A job
directory is complete once it exists under its final name: a worker writes everything
into a hidden temporary sibling, then renames it into place, so a worker killed midway
leaves only a ``.tmp-*`` directory that nothing reads (and the next attempt removes).
The loader skips run ids the manifest already holds: loading twice changes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import TdwError

JOB_FILE = "_job.json"


def job_dir(lake: Path, probe: str, model_id: str, step: int, params_hash: str) -> Path:
    """Where one job's files live; the model id is percent-quoted, so it is one component."""
    return (Path(lake) / probe / f"model={quote(model_id, safe='')}" / f"step={int(step)}"
            / f"params={params_hash}")


def check_writable(lake: Path) -> Path:
    """Create the lake (if needed) and prove a file can be written there, or a clean error."""
    lake = Path(lake)
    try:
        lake.mkdir(parents=True, exist_ok=True)
        probe = lake / f".tdw-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise TdwError(f"lake {lake} is not writable ({e.strerror or e})") from None
    return lake


def _jsonable(job: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in job.items()}


def write_job(lake: Path, job: dict, frames: dict[str, pd.DataFrame] | None,
              error: str | None = None) -> Path:
    """Write one finished job (its frames, or the error that failed it); returns its directory."""
    final = job_dir(lake, job["probe"], job["model_id"], job["step"], job["params_hash"])
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    rows = {}
    for name, frame in (frames or {}).items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, tmp / f"{name}.parquet")
        rows[name] = len(frame)
    meta = dict(_jsonable(job), run_id=job.get("run_id") or str(uuid.uuid4()),
                status="failed" if error else "success", error=error, rows=rows,
                ended_at=datetime.now().astimezone().isoformat())
    (tmp / JOB_FILE).write_text(json.dumps(meta, sort_keys=True, default=str))
    for stale in final.parent.glob(f".tmp-{final.name}-*"):      # earlier attempts killed midway
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    if final.exists():                                          # a rerun replaces the old job
        old = final.parent / f".tmp-{final.name}-old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)
    return final


class BadLakeJob(TdwError):
    """A job directory that cannot be trusted; ``meta`` is its manifest when that was readable."""

    def __init__(self, message: str, meta: dict | None = None):
        super().__init__(message)
        self.meta = meta


def _check_meta(path: Path, meta: object) -> dict:
    """The manifest's fields have their types, and name the job the directory holds."""
    if not isinstance(meta, dict):
        raise BadLakeJob(f"lake job {path}: {JOB_FILE} is not a JSON object")
    want = {"run_id": str, "model_id": str, "probe": str, "step": int, "params_hash": str, "status": str}
    for k, t in want.items():
        if type(meta.get(k)) is not t:
            raise BadLakeJob(f"lake job {path}: {JOB_FILE} field {k!r} is missing or not a {t.__name__}")
    if not 0 <= meta["step"] < 2**63 or meta["status"] not in ("success", "failed"):
        raise BadLakeJob(f"lake job {path}: {JOB_FILE} has step {meta['step']} / status {meta['status']!r}")
    if meta["status"] == "success" and not (isinstance(meta.get("rows"), dict) and all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in meta["rows"].items())):
        raise BadLakeJob(f"lake job {path}: {JOB_FILE} field 'rows' must map table names to row counts")
    expected = job_dir(path.parents[3], meta["probe"], meta["model_id"], meta["step"], meta["params_hash"])
    if expected.parts[-4:] != path.parts[-4:]:
        raise BadLakeJob(f"lake job {path}: its {JOB_FILE} names another job ({meta['probe']}, "
                         f"{meta['model_id']}, step {meta['step']})")
    return meta


def read_job(path: Path) -> tuple[dict, dict[str, pd.DataFrame] | None, str | None]:
    """(manifest fields, frames or None, error or None) of one complete job directory; a
    BadLakeJob when its manifest is malformed, names another job than its directory, or its
    rows belong to another model or step than its manifest says."""
    path = Path(path)
    try:
        meta = json.loads((path / JOB_FILE).read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise BadLakeJob(f"lake job {path} is unreadable ({str(e).splitlines()[0][:120]})") from None
    meta = _check_meta(path, meta)
    try:
        for k in ("started_at", "ended_at"):
            if meta.get(k):
                meta[k] = datetime.fromisoformat(meta[k])
    except (TypeError, ValueError):
        raise BadLakeJob(f"lake job {path}: {JOB_FILE} has a malformed time", meta) from None
    if meta["status"] != "success":
        return meta, None, str(meta.get("error") or "failed")
    frames = {}
    for name, n in meta["rows"].items():
        if Path(name).name != name or name.startswith("."):
            raise BadLakeJob(f"lake job {path}: table name {name!r} is not a file name", meta)
        try:
            frames[name] = pq.read_table(path / f"{name}.parquet").to_pandas()
        except (OSError, pa.ArrowException) as e:
            raise BadLakeJob(f"lake job {path}: table {name} is unreadable ({str(e).splitlines()[0][:120]})",
                             meta) from None
        frame = frames[name]
        if len(frame) != n:
            raise BadLakeJob(f"lake job {path}: {name} has {len(frame)} rows, expected {n}", meta)
        for col, want in (("model_id", meta["model_id"]), ("step", meta["step"])):
            if col in frame and len(frame) and not (frame[col] == want).all():
                raise BadLakeJob(f"lake job {path}: {name} holds rows of another {col} than its "
                                 f"{JOB_FILE} ({want!r})", meta)
    return meta, frames, None


def job_version(path: Path) -> str | None:
    """The probe version a complete job directory was computed with (None if unreadable)."""
    try:
        return json.loads((Path(path) / JOB_FILE).read_text()).get("probe_version")
    except (OSError, ValueError):
        return None


def complete_jobs(lake: Path, model_id: str | None = None) -> list[Path]:
    """Every complete job directory (optionally of one model), in (probe, model, step) order."""
    lake = Path(lake)
    model = f"model={quote(model_id, safe='')}" if model_id else "model=*"
    found = [p.parent for p in lake.glob(f"*/{model}/step=*/params=*/{JOB_FILE}")
             if p.parent.parent.name[5:].isascii() and p.parent.parent.name[5:].isdigit()]
    return sorted(found, key=lambda p: (p.parts[-4], p.parts[-3], int(p.parts[-2][5:]), p.parts[-1]))
