"""Ingest orchestration: source → checkpoints in step order → probes → one transaction a job.

Everything that can be checked before the first job is checked first (source, revision
spec, probe names, parameters, device, the warehouse file, the lake, the Ray address), so
bad input changes nothing. A checkpoint that fails (truncated file, missing config) is
recorded as failed in the manifest and the batch goes on; the result says what failed.

The jobs run on an executor (``warehouse.executors``): ``local`` in this process, or ``ray``
as one task per (checkpoint, probe) writing Parquet to the lake. Either way this process is
the only DuckDB writer; with a lake it first loads any finished job an interrupted run left
there, then skips it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from tqdm import tqdm

from ingest import devices
from ingest.errors import TdwError
from ingest.probes import PROBES, Probe, all_tables, get_probes
from ingest.probes.base import params_hash
from ingest.sources import checkpoints, open_source
from warehouse import db, executors, jobs, lake as lake_mod
from warehouse.params import check_params

EXECUTORS = ("local", "ray")


@dataclass
class IngestResult:
    model_id: str
    steps: list[int]
    done: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    recovered: int = 0                 # finished jobs an interrupted run left in the lake
    workers: set = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, out: jobs.Outcome) -> None:
        key = (out.job["step"], out.job["probe"])
        if out.status == "done":
            self.done.append(key)
        elif out.status == "skipped":
            self.skipped.append(key)
        else:
            self.failed.append((*key, out.error or "failed"))
        if out.worker:
            self.workers.add((out.worker.get("node"), out.worker.get("pid")))

    def summary(self) -> str:
        s = (f"{self.model_id}: {len(self.steps)} checkpoints, {len(self.done)} jobs loaded, "
             f"{len(self.skipped)} unchanged (skipped), {len(self.failed)} failed")
        if self.recovered:
            s += f", {self.recovered} recovered from the lake"
        if self.workers:
            s += f"; ran on {len(self.workers)} Ray worker processes"
        for step, probe, err in self.failed[:10]:
            s += f"\n  failed step{step} {probe}: {err}"
        return s


def _validate(source, steps: list[int], probes: list[Probe], params: dict) -> None:
    """Check probe parameters on the first checkpoint that opens (bad files fail later, as jobs)."""
    for step in steps:
        try:
            ckpt = source.checkpoint(step)
            ckpt.tensors()
        except Exception:  # a bad checkpoint fails as its own job later; try the next one here
            continue
        for p in probes:
            p.validate(ckpt, params[p.name])
        return


def _recover(con, lake: Path, model_id: str, steps: list[int], probes: list[Probe],
             params_by: dict[str, dict]) -> int:
    """Load the finished jobs an interrupted run of this same plan (steps, probes, parameters,
    probe versions) left in the lake, each exactly once; other runs' jobs are left alone."""
    by_probe = {p.name: p for p in probes}
    n = 0
    for p in probes:
        h = params_hash(params_by[p.name])
        for step in steps:
            path = lake_mod.job_dir(lake, p.name, model_id, step, h)
            if not (path / lake_mod.JOB_FILE).exists() or lake_mod.job_version(path) != p.version:
                continue
            out = jobs.load_lake_job(con, path, by_probe)
            if out is not None and out.status == "done":
                n += 1
    return n


def ingest(source: str, revisions: str = "all", probes: str | None = None,
           warehouse: Path = Path("data/warehouse.duckdb"), toy_root: Path | None = None,
           force: bool = False, params: dict[str, dict] | None = None, allow_pickle: bool = False,
           progress: bool = True, wait: float = 0.0, executor: str = "local",
           lake: Path | None = None, ray_address: str | None = None, ray_cpus: int | None = None,
           device: str = "auto", dtype: str | None = None) -> IngestResult:
    if executor not in EXECUTORS:
        raise TdwError(f"unknown executor {executor!r}; use one of: {', '.join(EXECUTORS)}")
    src = open_source(source, toy_root=toy_root, allow_pickle=allow_pickle)
    steps = checkpoints(src, revisions)
    chosen = get_probes(probes)
    overrides = check_params(params or {}, PROBES)
    params_by = {p.name: p.params(**overrides.get(p.name, {})) for p in chosen}
    db.check_file(Path(warehouse))
    if executor == "ray":
        executors.check_ray_address(ray_address)
        lake = Path(lake) if lake else Path(warehouse).parent / "lake"
    if lake is not None:
        lake = lake_mod.check_writable(Path(lake))
    started_ray = False
    try:
        if executor == "ray":
            started_ray = executors.ray_connect(ray_address, ray_cpus)
            have_gpu = executors.ray_gpus() > 0 if device != "cpu" else False
        else:
            have_gpu = None
        resolved = devices.resolve_device(device, have_gpu)
        devices.apply(params_by, {p.name: p.defaults for p in chosen}, overrides, resolved, dtype)
        _validate(src, steps, chosen, params_by)
        return _run(src, steps, chosen, params_by, Path(warehouse), toy_root, force, allow_pickle,
                    progress, wait, executor, lake, source, resolved)
    finally:
        if started_ray:
            import ray
            ray.shutdown()


def _run(src, steps, chosen, params_by, warehouse, toy_root, force, allow_pickle, progress, wait,
         executor, lake, source, device) -> IngestResult:
    con = db.connect(warehouse, wait=wait)
    result = IngestResult(src.model_id, steps)
    try:
        db.ensure_tables(con, all_tables())
        if lake is not None:
            result.recovered = _recover(con, lake, src.model_id, steps, chosen, params_by)
        contexts = {p.name: p.context(src, steps, params_by[p.name]) for p in chosen}
        plan = executors.Plan(source, str(toy_root) if toy_root else None, allow_pickle, src.model_id,
                              src.kind, steps, chosen, params_by, force, lake, device)
        bar = tqdm(total=len(steps) * len(chosen), desc=f"ingest {src.model_id}", unit="job",
                   disable=not progress)

        def on_outcome(out: jobs.Outcome) -> None:
            result.add(out)
            bar.update(1)

        at = [""]

        def on_start(label: str) -> None:
            at[0] = label
            bar.set_postfix_str(label)

        run = executors.run_ray if executor == "ray" else executors.run_local
        try:
            run(plan, con, contexts, on_outcome, on_start)
        except (duckdb.Error, OSError) as e:  # the file or the disk failed (full, I/O): stop the batch
            raise TdwError(f"writing {at[0]} to {warehouse} failed ({jobs.one_line(e)}); "
                           "earlier jobs are kept, rerun to resume") from None
        bar.close()
    finally:
        _close(con, warehouse)
    return result


def _close(con, warehouse: Path) -> None:
    """Close (and so checkpoint) the warehouse; a failure here (disk full) is one line."""
    try:
        con.close()
    except duckdb.Error as e:
        raise TdwError(f"closing {warehouse} failed ({jobs.one_line(e)}); committed jobs are in its "
                       "write-ahead log and are kept") from None


def load_lake(lake: Path, warehouse: Path, model_id: str | None = None, wait: float = 0.0,
              progress: bool = True) -> tuple[int, int, int]:
    """Load every complete lake job (of one model, or all) that the warehouse lacks, one
    transaction a job: for lakes filled by workers elsewhere. Returns (loaded, failed, present)."""
    lake = Path(lake)
    if not lake.is_dir():
        raise TdwError(f"no lake at {lake}")
    db.check_file(Path(warehouse))
    paths = lake_mod.complete_jobs(lake, model_id)
    con = db.connect(Path(warehouse), wait=wait)
    counts = [0, 0, 0]
    try:
        db.ensure_tables(con, all_tables())
        for path in tqdm(paths, desc=f"load {lake}", unit="job", disable=not progress):
            out = jobs.load_lake_job(con, path, {})
            counts[2 if out is None else 0 if out.status == "done" else 1] += 1
    except (duckdb.Error, OSError) as e:
        raise TdwError(f"loading {lake} into {warehouse} failed ({jobs.one_line(e)}); "
                       "jobs loaded so far are kept, rerun to finish") from None
    finally:
        _close(con, Path(warehouse))
    return counts[0], counts[1], counts[2]
