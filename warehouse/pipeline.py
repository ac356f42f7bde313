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
from warehouse import db, executors, jobs
from warehouse import lake as lake_mod
from warehouse.params import check_params

EXECUTORS = ("local", "ray")


@dataclass
class IngestResult:
    model_id: str
    steps: list[int]
    done: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    recovered: int = 0  # finished jobs an interrupted run left in the lake
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
        s = (
            f"{self.model_id}: {len(self.steps)} checkpoints, {len(self.done)} jobs loaded, "
            f"{len(self.skipped)} unchanged (skipped), {len(self.failed)} failed"
        )
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


def _recover(con, lake: Path, model_id: str, steps: list[int], probes: list[Probe], params_by: dict[str, dict]) -> int:
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


@dataclass
class IngestRequest:
    """What ``tdw ingest`` was asked to do, as the CLI parsed it (one field per option).

    The command builds one and hands it down; :func:`ingest` checks it and resolves it into
    the ``executors.Plan`` the workers run (model id, steps, probes, their parameters)."""

    source: str
    revisions: str = "all"
    probes: str | None = None
    warehouse: Path = Path("data/warehouse.duckdb")
    toy_root: Path | None = None
    force: bool = False
    params: dict[str, dict] | None = None  # probe -> name -> value, typed by check_params
    allow_pickle: bool = False
    progress: bool = True
    wait: float = 0.0
    executor: str = "local"
    lake: Path | None = None
    ray_address: str | None = None
    ray_cpus: int | None = None
    device: str = "auto"
    dtype: str | None = None
    revision_pattern: str | None = None


def open_request(req: IngestRequest):
    """The checkpoint source a request names (a one-line TdwError when there is none)."""
    return open_source(
        req.source, toy_root=req.toy_root, allow_pickle=req.allow_pickle, revision_pattern=req.revision_pattern
    )


def probe_params(req: IngestRequest) -> tuple[list[Probe], dict[str, dict], dict[str, dict]]:
    """The request's probes, its checked ``--param`` overrides and every probe's parameters."""
    chosen = get_probes(req.probes)
    overrides = check_params(req.params or {}, PROBES)
    return chosen, overrides, {p.name: p.params(**overrides.get(p.name, {})) for p in chosen}


def make_plan(
    req: IngestRequest, src, steps: list[int], probes: tuple, lake: Path | None = None, have_gpu: bool | None = None
) -> executors.Plan:
    """Resolve the device, check the parameters on the first checkpoint that opens, and build
    the plan the executors run (``probes`` is what :func:`probe_params` returned)."""
    chosen, overrides, params_by = probes
    resolved = devices.resolve_device(req.device, have_gpu)
    devices.apply(params_by, {p.name: p.defaults for p in chosen}, overrides, resolved, req.dtype)
    _validate(src, steps, chosen, params_by)
    return executors.Plan(
        req.source,
        str(req.toy_root) if req.toy_root else None,
        req.allow_pickle,
        src.model_id,
        src.kind,
        steps,
        chosen,
        params_by,
        req.force,
        lake,
        resolved,
        req.revision_pattern,
    )


def ingest(source: str | IngestRequest, **options) -> IngestResult:
    """Run one ingest: ``ingest(request)``, or ``ingest(source, **fields)`` with the fields of
    :class:`IngestRequest` (a shorthand for scripts and tests)."""
    req = source if isinstance(source, IngestRequest) else IngestRequest(source, **options)
    if isinstance(source, IngestRequest) and options:
        raise TypeError("ingest(request) takes no further options")
    if req.executor not in EXECUTORS:
        raise TdwError(f"unknown executor {req.executor!r}; use one of: {', '.join(EXECUTORS)}")
    src = open_request(req)
    steps = checkpoints(src, req.revisions)
    chosen, overrides, params_by = probe_params(req)
    db.check_file(Path(req.warehouse))
    lake = req.lake
    if req.executor == "ray":
        executors.check_ray_address(req.ray_address)
        lake = Path(lake) if lake else Path(req.warehouse).parent / "lake"
    if lake is not None:
        lake = lake_mod.check_writable(Path(lake))
    started_ray = False
    try:
        if req.executor == "ray":
            started_ray = executors.ray_connect(req.ray_address, req.ray_cpus)
            have_gpu = executors.ray_gpus() > 0 if req.device != "cpu" else False
        else:
            have_gpu = None
        plan = make_plan(req, src, steps, (chosen, overrides, params_by), lake, have_gpu)
        return run_plan(req, plan, src)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def run_plan(req: IngestRequest, plan: executors.Plan, src) -> IngestResult:
    """Run a resolved plan's jobs on the requested executor into the warehouse file."""
    warehouse = Path(req.warehouse)
    con = db.connect(warehouse, wait=req.wait)
    result = IngestResult(plan.model_id, plan.steps)
    try:
        db.ensure_tables(con, all_tables())
        if plan.lake is not None:
            result.recovered = _recover(con, plan.lake, plan.model_id, plan.steps, plan.probes, plan.params)
        contexts = {p.name: p.context(src, plan.steps, plan.params[p.name]) for p in plan.probes}
        bar = tqdm(
            total=len(plan.steps) * len(plan.probes),
            desc=f"ingest {plan.model_id}",
            unit="job",
            disable=not req.progress,
        )

        def on_outcome(out: jobs.Outcome) -> None:
            result.add(out)
            bar.update(1)

        at = [""]

        def on_start(label: str) -> None:
            at[0] = label
            bar.set_postfix_str(label)

        run = executors.run_ray if req.executor == "ray" else executors.run_local
        try:
            run(plan, con, contexts, on_outcome, on_start)
        except (duckdb.Error, OSError) as e:  # the file or the disk failed (full, I/O): stop the batch
            raise TdwError(
                f"writing {at[0]} to {warehouse} failed ({jobs.one_line(e)}); earlier jobs are kept, rerun to resume"
            ) from None
        bar.close()
    finally:
        _close(con, warehouse)
    return result


def _close(con, warehouse: Path) -> None:
    """Close (and so checkpoint) the warehouse; a failure here (disk full) is one line."""
    try:
        con.close()
    except duckdb.Error as e:
        raise TdwError(
            f"closing {warehouse} failed ({jobs.one_line(e)}); committed jobs are in its write-ahead log and are kept"
        ) from None


def load_lake(
    lake: Path, warehouse: Path, model_id: str | None = None, wait: float = 0.0, progress: bool = True
) -> tuple[int, int, int]:
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
        raise TdwError(
            f"loading {lake} into {warehouse} failed ({jobs.one_line(e)}); jobs loaded so far are kept, rerun to finish"
        ) from None
    finally:
        _close(con, Path(warehouse))
    return counts[0], counts[1], counts[2]
