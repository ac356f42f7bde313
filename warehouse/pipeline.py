"""Ingest orchestration: source → checkpoints in step order → probes → one transaction a job.

Everything that can be checked before the first job is checked first (source, revision
spec, probe names, parameters, the warehouse file), so bad input changes nothing. A
checkpoint that fails (truncated file, missing config) is recorded as failed in the
manifest and the batch goes on; the result says what failed.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import duckdb
from tqdm import tqdm

from ingest.errors import TdwError
from ingest.probes import Probe, all_tables, get_probes
from ingest.probes.base import params_hash
from ingest.sources import checkpoints, open_source
from warehouse import db
from warehouse.faults import fault_point


@lru_cache(maxsize=1)
def code_version() -> str:
    from importlib.metadata import version
    v = version("tdw")
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{v}+{sha}" if sha else v


@dataclass
class IngestResult:
    model_id: str
    steps: list[int]
    done: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        s = (f"{self.model_id}: {len(self.steps)} checkpoints, {len(self.done)} jobs loaded, "
             f"{len(self.skipped)} unchanged (skipped), {len(self.failed)} failed")
        for step, probe, err in self.failed[:10]:
            s += f"\n  failed step{step} {probe}: {err}"
        return s


def _validate(source, steps: list[int], probes: list[Probe], params: dict) -> None:
    """Check probe parameters on the first checkpoint that opens (bad files fail later, as jobs)."""
    for step in steps:
        try:
            ckpt = source.checkpoint(step)
            ckpt.tensors()
        except TdwError:
            continue
        for p in probes:
            p.validate(ckpt, params[p.name])
        return


def ingest(source: str, revisions: str = "all", probes: str | None = None,
           warehouse: Path = Path("data/warehouse.duckdb"), toy_root: Path | None = None,
           force: bool = False, params: dict[str, dict] | None = None, allow_pickle: bool = False,
           progress: bool = True, wait: float = 0.0) -> IngestResult:
    src = open_source(source, toy_root=toy_root, allow_pickle=allow_pickle)
    steps = checkpoints(src, revisions)
    chosen = get_probes(probes)
    overrides = params or {}
    params_by = {p.name: p.params(**overrides.get(p.name, {})) for p in chosen}
    db.check_file(Path(warehouse))
    _validate(src, steps, chosen, params_by)

    con = db.connect(Path(warehouse), wait=wait)
    result = IngestResult(src.model_id, steps)
    try:
        db.ensure_tables(con, all_tables())
        contexts = {p.name: p.context(src, steps, params_by[p.name]) for p in chosen}
        bar = tqdm(total=len(steps) * len(chosen), desc=f"ingest {src.model_id}", unit="job",
                   disable=not progress)
        for step in steps:
            ckpt, open_error = None, None
            try:
                ckpt = src.checkpoint(step)       # shared by the probes: one model load a step
            except TdwError as e:
                open_error = e
            for probe in chosen:
                bar.set_postfix_str(f"step{step} {probe.name}")
                job = {"model_id": src.model_id, "step": step, "probe": probe.name,
                       "probe_version": probe.version, "params": params_by[probe.name],
                       "params_hash": params_hash(params_by[probe.name]), "source": src.kind,
                       "revision": f"step{step}", "code_version": code_version(),
                       "started_at": datetime.now(timezone.utc)}
                try:
                    if open_error:
                        raise open_error
                    job["content_hash"] = ckpt.content_hash()
                    fault_point("load", step)
                    if not force and db.already_done(con, job):
                        result.skipped.append((step, probe.name))
                    else:
                        ckpt.validate()
                        frames = probe.run(ckpt, params_by[probe.name], contexts[probe.name])
                        fault_point("probe", step)
                        db.load_job(con, probe.tables, frames, job,
                                    before_commit=lambda: fault_point("transaction", step))
                        result.done.append((step, probe.name))
                except TdwError as e:
                    db.record_failure(con, job, str(e))
                    result.failed.append((step, probe.name, str(e)))
                except duckdb.Error as e:  # the file itself failed (disk full, I/O): stop the batch
                    raise TdwError(f"writing step{step} {probe.name} to {warehouse} failed "
                                   f"({str(e).strip().splitlines()[0]}); earlier jobs are kept, "
                                   "rerun to resume") from None
                bar.update(1)
            if ckpt is not None:
                ckpt.release()
        bar.close()
    finally:
        con.close()
    return result
