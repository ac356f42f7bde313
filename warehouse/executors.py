"""Executors: where the jobs of one ingest run. Both hand every finished job to one loader.

``local`` (the default) runs the jobs in this process, step by step, sharing each loaded
checkpoint between the probes. ``ray`` makes each (model, checkpoint, probe) job a Ray task
that declares its CPU and GPU needs and is retried when its worker dies; the task writes its
tables to the Parquet lake and returns the job's directory, and this process — the only one
that opens DuckDB — loads each directory as it arrives, one transaction a job. With a lake,
the local executor takes the same route (compute → lake → load), so the two differ only in
where the compute runs.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import duckdb

from ingest.errors import TdwError
from ingest.probes import Probe
from ingest.schema import params_hash
from warehouse import db, jobs, lake

FORWARDED_ENV = ("TDW_FAULT_AT", "TDW_FAULT_FILE", "TDW_FAULT_ONCE", "HF_HUB_OFFLINE", "TDW_DATA_DIR")


@dataclass
class Plan:
    """Everything a worker needs to open the source again and run its jobs."""
    source: str
    toy_root: str | None
    allow_pickle: bool
    model_id: str
    kind: str
    steps: list[int]
    probes: list[Probe]
    params: dict[str, dict]
    force: bool
    lake: Path | None
    device: str = "cpu"


def _open(plan: Plan):
    from ingest.sources import open_source
    return open_source(plan.source, toy_root=Path(plan.toy_root) if plan.toy_root else None,
                       allow_pickle=plan.allow_pickle)


def _done(plan: Plan, con) -> dict[tuple, str]:
    """Content hashes the warehouse already holds per (step, probe, params hash) ({} with --force)."""
    if plan.force:
        return {}
    versions = {(s, p.name, params_hash(plan.params[p.name])): p.version for s in plan.steps for p in plan.probes}
    return db.done_hashes(con, plan.model_id, versions)


def _write_lake(lake_root: Path, out: jobs.Outcome) -> jobs.Outcome:
    if out.status == "skipped":
        return out
    out.lake_path = str(lake.write_job(lake_root, out.job, out.frames, out.error))
    out.frames = None
    return out


# ---------------------------------------------------------------------------------- local
def run_local(plan: Plan, con, contexts: dict, on_outcome: Callable[[jobs.Outcome], None],
              on_start: Callable[[str], None]) -> None:
    src = _open(plan)
    done = _done(plan, con)
    by_probe = {p.name: p for p in plan.probes}
    for step in plan.steps:
        opened: list = []

        def open_once(step=step):
            if not opened:
                try:
                    opened.append(src.checkpoint(step))       # shared by the probes of a step
                except TdwError as e:
                    opened.append(e)
            if isinstance(opened[0], TdwError):
                raise opened[0]
            return opened[0]

        for probe in plan.probes:
            on_start(f"step{step} {probe.name}")
            job = jobs.job_record(plan.model_id, plan.kind, step, probe, plan.params[probe.name])
            key = (step, probe.name, job["params_hash"])
            out = jobs.run_job(open_once, probe, plan.params[probe.name], contexts[probe.name], job,
                               done.get(key))
            if plan.lake is not None:
                out = _write_lake(plan.lake, out)
                if out.status != "skipped":
                    loaded = jobs.load_lake_job(con, Path(out.lake_path), by_probe)
                    out = loaded or out
            elif out.status != "skipped":
                jobs.commit(con, probe, out)
            out.frames = None
            on_outcome(out)
        if opened and not isinstance(opened[0], TdwError):
            opened[0].release()


# ------------------------------------------------------------------------------------ ray
def check_ray_address(address: str | None) -> None:
    """A clean error, before anything starts, when a host:port address does not answer."""
    if not address or address in ("local", "auto") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise TdwError(f"Ray address {address!r} is not host:port, 'auto' or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as e:
        raise TdwError(f"Ray cluster at {address} does not answer ({e.strerror or e})") from None


def ray_connect(address: str | None, cpus: int | None) -> bool:
    """Connect to (or start) Ray; True when this call started it and must shut it down."""
    import logging
    import ray
    if ray.is_initialized():
        return False
    check_ray_address(address)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False,
                                  runtime_env={"env_vars": env} if env else None)
    try:
        if not address or address == "local":
            ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ValueError…
        raise TdwError(f"cannot connect to Ray at {address or 'a new local instance'}: "
                       f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return True


def ray_gpus() -> float:
    import ray
    return float(ray.cluster_resources().get("GPU", 0))


def _remote_job(plan: Plan, probe_name: str, step: int, context: dict, done_hash: str | None) -> jobs.Outcome:
    """Body of one Ray task: open the checkpoint, run one probe, write the lake."""
    import ray
    probe = next(p for p in plan.probes if p.name == probe_name)
    src = _open(plan)
    job = jobs.job_record(plan.model_id, plan.kind, step, probe, plan.params[probe_name])
    out = jobs.run_job(lambda: src.checkpoint(step), probe, plan.params[probe_name], context, job, done_hash)
    out.worker = {"node": ray.get_runtime_context().get_node_id()[:8], "pid": os.getpid()}
    return _write_lake(plan.lake, out)


def run_ray(plan: Plan, con, contexts: dict, on_outcome: Callable[[jobs.Outcome], None],
            on_start: Callable[[str], None], max_retries: int = 3) -> None:
    import ray
    by_probe = {p.name: p for p in plan.probes}
    planned = [jobs.job_record(plan.model_id, plan.kind, s, p, plan.params[p.name])
               for s in plan.steps for p in plan.probes]
    done = _done(plan, con)
    task = ray.remote(_remote_job)
    plan_ref = ray.put(plan)
    ctx_refs = {name: ray.put(c) for name, c in contexts.items()}
    pending: dict = {}
    for j in planned:
        gpus = 1 if plan.device.startswith("cuda") and by_probe[j["probe"]].runs_model else 0
        ref = task.options(num_cpus=1, num_gpus=gpus, max_retries=max_retries,
                           retry_exceptions=False, name=f"tdw step{j['step']} {j['probe']}").remote(
            plan_ref, j["probe"], j["step"], ctx_refs[j["probe"]],
            done.get((j["step"], j["probe"], j["params_hash"])))
        pending[ref] = j
    on_start(f"{len(pending)} tasks on {int(ray.cluster_resources().get('CPU', 0))} CPUs")
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            j = pending.pop(ref)
            try:
                out = ray.get(ref)
            except Exception as e:  # retries exhausted (worker died every time) or a bug in a probe
                msg = str(e).strip().splitlines()
                out = jobs.Outcome(j, "failed", error=f"Ray task failed: {msg[-1] if msg else type(e).__name__}")
                jobs.commit(con, by_probe[j["probe"]], out)
            else:
                if out.status != "skipped":
                    loaded = jobs.load_lake_job(con, Path(out.lake_path), by_probe)
                    if loaded is not None:
                        loaded.worker, out = out.worker, loaded
            on_start(f"step{out.job['step']} {out.job['probe']} ({len(pending)} left)")
            on_outcome(out)
    except (duckdb.Error, KeyboardInterrupt):
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
