"""One ingest job — (model, checkpoint, probe, parameters) — as both executors run it.

``run_job`` is the whole of a job's compute: check the checkpoint, skip it when the
warehouse already holds this content with this probe version, run the probe. It never
touches DuckDB, so it runs the same in the ingest process (local executor) and in a Ray
worker (a first-time job reads its content hash in a thread while its probe runs). ``commit``
and ``load_lake_job`` are the loader's half: they run only in the one
process that holds the warehouse's write lock.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ingest.errors import TdwError
from ingest.probes import Probe
from ingest.schema import params_hash
from warehouse import db, lake
from warehouse.faults import fault_point

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@lru_cache(maxsize=1)
def code_version() -> str:
    from importlib.metadata import version

    v = version("tdw")
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{v}+{sha}" if sha else v


def job_record(model_id: str, kind: str, step: int, probe: Probe, params: dict[str, Any]) -> dict:
    """The manifest fields of one job, before it runs."""
    return {
        "model_id": model_id,
        "step": step,
        "probe": probe.name,
        "probe_version": probe.version,
        "params": params,
        "params_hash": params_hash(params),
        "source": kind,
        "revision": f"step{step}",
        "code_version": code_version(),
        "started_at": datetime.now(UTC),
    }


@dataclass
class Outcome:
    job: dict
    status: str  # 'done' | 'skipped' | 'failed'
    frames: dict[str, pd.DataFrame] | None = None
    error: str | None = None
    lake_path: str | None = None
    worker: dict = field(default_factory=dict)  # where it ran (Ray: node, pid)


@lru_cache(maxsize=1)
def _hasher() -> ThreadPoolExecutor:
    """One thread for content hashes: sha256 releases the GIL, so a first-time job's hash
    (a read of every weight file) overlaps its probe instead of preceding it."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdw-hash")


def _settle(hashing: Future | None, job: dict) -> None:
    """A failed job still records the content hash when its read succeeded."""
    if hashing is not None and "content_hash" not in job:
        try:
            job["content_hash"] = hashing.result()
        except Exception:  # the job already failed on its first error
            pass


def run_job(open_checkpoint, probe: Probe, params: dict, context: dict, job: dict, done_hash: str | None) -> Outcome:
    """Compute one job. ``open_checkpoint()`` returns the checkpoint (or raises TdwError);
    ``done_hash`` is the content hash the warehouse already holds for this job (or None)."""
    step = job["step"]
    hashing = None
    try:
        ckpt = open_checkpoint()
        job["revision"], job["tokens_seen"] = ckpt.revision, ckpt.tokens_seen  # the name the series uses
        if done_hash is None:  # nothing to skip: the hash is read while the probe runs
            hashing = _hasher().submit(ckpt.content_hash)
        else:
            job["content_hash"] = ckpt.content_hash()
        fault_point("load", step)
        if done_hash is not None and done_hash == job["content_hash"]:
            return Outcome(job, "skipped")
        ckpt.validate()
        frames = probe.run(ckpt, params, context)
        if hashing is not None:
            job["content_hash"] = hashing.result()
        fault_point("probe", step)
        return Outcome(job, "done", frames=frames)
    except TdwError as e:
        _settle(hashing, job)
        return Outcome(job, "failed", error=str(e))
    except Exception as e:  # anything else inside one checkpoint fails that job, not the batch
        _settle(hashing, job)
        if os.environ.get("TDW_DEBUG"):
            raise
        return Outcome(job, "failed", error=one_line(e))


def one_line(e: BaseException) -> str:
    """An exception as a one-line reason for the manifest (no traceback, no ANSI codes)."""
    text = ANSI.sub("", str(e)).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


# DuckDB errors that come from one job's data, not from the file: that job fails, the batch goes on
DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.BinderException,
    duckdb.TypeMismatchException,
    duckdb.InvalidTypeException,
)


def commit(con, probe: Probe, outcome: Outcome) -> None:
    """Load a computed job into the warehouse (or record its failure); one transaction."""
    job, step = outcome.job, outcome.job["step"]
    try:
        if outcome.status == "failed":
            db.record_failure(con, job, outcome.error)
            return
        db.load_job(
            con,
            probe.tables,
            outcome.frames,
            job,
            probe=probe,  # quality gate first
            before_commit=lambda: fault_point("transaction", step),
        )
    except TdwError as e:
        outcome.status, outcome.error = "failed", str(e)
        db.record_failure(con, job, e)
    except DATA_ERRORS as e:  # load_job rolled back; the file itself is fine
        outcome.status, outcome.error = "failed", f"cannot load: {one_line(e)}"
        db.record_failure(con, job, outcome.error)


def loaded(con, run_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM raw.ingest_runs WHERE run_id=? LIMIT 1", [run_id]).fetchall())


def load_lake_job(con, path: Path, probes: dict[str, Probe]) -> Outcome | None:
    """Move one finished lake job into the warehouse; None when it is already there. A job
    that cannot be trusted (malformed manifest, rows of another model or step, unknown
    probe) loads nothing: it is recorded as failed when its manifest names it, else skipped
    with its reason in the outcome."""
    try:
        job, frames, error = lake.read_job(path)
    except lake.BadLakeJob as e:
        if e.meta is None:
            return Outcome({"step": -1, "probe": str(path)}, "failed", error=str(e), lake_path=str(path))
        job, frames, error = e.meta, None, str(e)
    if loaded(con, job["run_id"]):
        return None
    probe = probes.get(job["probe"])
    if probe is None:
        from ingest.probes import get_probes

        try:
            probe = get_probes(job["probe"])[0]
        except TdwError as e:
            return Outcome(job, "failed", error=f"lake job {path}: {e}", lake_path=str(path))
    outcome = Outcome(job, "failed" if error else "done", frames=frames, error=error, lake_path=str(path))
    commit(con, probe, outcome)
    return outcome
