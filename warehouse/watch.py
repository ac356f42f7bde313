"""Live ingest of a growing checkpoint series: ``tdw watch DIR`` and the Trainer callback's worker.

A training run writes ``checkpoint-<N>/`` (or ``step<N>/`` …) folders while it trains. The
watcher polls the directory every ``interval`` seconds (a poll, not inotify: it works on
network and container file systems alike and needs no dependency), asks
``ingest.growing.Settler`` which folders are complete, and ingests each complete folder it
has not ingested yet, one checkpoint at a time, with the plan ``tdw ingest`` would build
(``pipeline.make_plan``: the same probes, parameters and checks, made once from the first
complete checkpoint). Every job is one transaction and the manifest keys a job by content
hash (``pipeline``/``db.done_hashes``), so whatever stops the watcher, a rerun loads each
checkpoint exactly once: already loaded jobs are skipped, missing ones run.

Stopping: ``request_stop()`` (the CLI wires SIGINT and SIGTERM to it) lets the checkpoint in
flight finish its jobs, then the loop returns; a second signal interrupts at once, which
rolls back the one open transaction and keeps everything committed. A build in progress
finishes (``--build-every``); a killed build leaves the previous serving snapshot.

A warehouse that cannot be opened (another process holds its lock, the disk is full) is not
the checkpoint's fault: the checkpoint stays pending and is retried at the next poll.
Options that are wrong for every checkpoint (a probe parameter the model refutes) stop the
watcher with their one-line error.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.errors import TdwError
from ingest.growing import Settler, Signature
from ingest.sources import WEIGHT_FILES
from warehouse import db
from warehouse.pipeline import IngestRequest, IngestResult, make_plan, open_request, probe_params, run_plan

_CADENCE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?\s*$")


@dataclass(frozen=True)
class Cadence:
    """Build after ``checkpoints`` newly loaded checkpoints, or ``seconds`` after the last
    build when something new was loaded since."""

    checkpoints: int = 0
    seconds: float = 0.0

    @staticmethod
    def parse(text: str | None) -> Cadence | None:
        """``N`` (checkpoints) or ``N s``/``N m``/``N h`` (time); None for no builds."""
        if text is None or str(text).strip() in ("", "0", "never"):
            return None
        m = _CADENCE.match(str(text))
        if not m:
            raise TdwError(f"--build-every {text!r}: expected N (checkpoints) or N followed by s, m or h")
        value, unit = float(m.group(1)), m.group(2)
        if unit is None:
            if not value.is_integer() or value < 1:
                raise TdwError(f"--build-every {text!r}: a count of checkpoints is a positive integer")
            return Cadence(checkpoints=int(value))
        seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
        if seconds <= 0:
            raise TdwError(f"--build-every {text!r}: the interval must be positive")
        return Cadence(seconds=seconds)

    def due(self, new: int, since: float) -> bool:
        if new == 0:
            return False
        return new >= self.checkpoints if self.checkpoints else since >= self.seconds


class LiveIngest:
    """One local series ingested a checkpoint at a time with one plan (``tdw ingest``'s)."""

    def __init__(self, req: IngestRequest):
        self.req = replace(req, progress=False, executor="local", lake=None, force=False)
        self.src = open_request(self.req)
        if self.src.kind == "hub":
            raise TdwError(f"{req.source}: tdw watch needs a local directory of checkpoints, not a hub id")
        root = Path(self.src.root)
        if any((root / n).exists() for n in ("config.json", *WEIGHT_FILES)):
            raise TdwError(f"{root} is one checkpoint, not a series of them: watch the folder that holds it")
        self.probes = probe_params(self.req)
        db.check_file(Path(self.req.warehouse))
        self.plan = None

    def warm_up(self) -> None:
        """Pay the one-time imports (the quality gate's Great Expectations) before the first
        checkpoint arrives, so its latency is that of its jobs."""
        from warehouse.quality_gx import gate

        gate()

    def folders(self) -> dict[int, Path]:
        """{step: folder} of the series now; a root that vanished is a one-line error."""
        if not Path(self.src.root).is_dir():
            raise TdwError(f"{self.src.root}: the watched directory is gone")
        return {s: Path(self.src.root) / name for s, name in self.src.names().items()}

    def prepare(self, step: int) -> None:
        """Build the plan on the first complete checkpoint (bad options fail here, once)."""
        if self.plan is None:
            self.plan = make_plan(self.req, self.src, [step], self.probes)

    def ingest(self, step: int) -> IngestResult:
        """Run every probe on one checkpoint; raises TdwError only when the warehouse fails."""
        self.prepare(step)
        return run_plan(self.req, replace(self.plan, steps=[step]), self.src)


@dataclass
class WatchResult:
    checkpoints: list[int] = field(default_factory=list)  # ingested (steps, in order)
    jobs_done: int = 0
    jobs_skipped: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    builds: int = 0
    build_errors: list[str] = field(default_factory=list)
    latency: dict[int, float] = field(default_factory=dict)  # step -> seconds from complete to loaded
    unbuilt: int = 0  # checkpoints loaded since the last build

    @property
    def ok(self) -> bool:
        return not self.failed and not self.build_errors

    def summary(self) -> str:
        s = (
            f"watched: {len(self.checkpoints)} checkpoints ingested, {self.jobs_done} jobs loaded, "
            f"{self.jobs_skipped} unchanged (skipped), {len(self.failed)} failed; {self.builds} builds"
        )
        if self.unbuilt:
            s += f"; {self.unbuilt} checkpoints loaded since the last build (run `tdw build`)"
        for step, probe, err in self.failed[:10]:
            s += f"\n  failed step{step} {probe}: {err}"
        return s


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


@dataclass(frozen=True)
class Polling:
    """How a directory is watched (``tdw watch``'s options): looked at every ``interval``
    seconds, a folder without trainer_state.json complete when unchanged for ``settle``
    seconds, a build on ``cadence`` (None: never); ``once``: stop when everything complete
    is loaded."""

    interval: float = 2.0
    settle: float = 10.0
    cadence: Cadence | None = None
    once: bool = False


def watch(
    req: IngestRequest,
    polling: Polling = Polling(),
    *,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] = print,
    build: Callable[[Path], None] | None = None,
) -> WatchResult:
    """Poll ``req.source`` and ingest each checkpoint once it is complete, until ``stop`` is
    set (or, with ``polling.once``, until every folder has had ``settle`` seconds to complete)."""
    interval, settle, cadence, once = polling.interval, polling.settle, polling.cadence, polling.once
    if interval <= 0 or settle < 0:
        raise TdwError("--interval must be positive and --settle not negative")
    live = LiveIngest(req)
    stop = stop or threading.Event()
    if build is None:
        from warehouse.dbt import build as dbt_build

        def build(path: Path) -> None:
            dbt_build(path, None, quiet=True)

    settler, result = Settler(settle), WatchResult()
    loaded: dict[int, Signature] = {}
    complete_at: dict[int, float] = {}
    started = last_build = time.monotonic()
    told_error = ""
    live.warm_up()
    echo(f"[{_stamp()}] watching {live.src.root} every {interval:g} s (settle {settle:g} s); Ctrl-C stops")
    while not stop.is_set():
        folders = live.folders()
        complete = settler.complete(folders)
        for step in complete:
            complete_at.setdefault(step, time.monotonic())
        todo = sorted(s for s, sig in complete.items() if loaded.get(s) != sig)
        for i, step in enumerate(todo):
            if stop.is_set():
                break
            if not folders[step].is_dir():  # removed since (a Trainer's save_total_limit)
                echo(f"[{_stamp()}] {folders[step].name}: removed before it could be ingested")
                continue
            live.prepare(step)  # wrong options: a one-line error that ends the watch
            echo(f"[{_stamp()}] {folders[step].name}: ingesting ({len(todo) - i - 1} more complete)")
            try:
                res = live.ingest(step)
            except TdwError as e:  # the warehouse, not the checkpoint: retry at the next poll
                if str(e) != told_error:
                    echo(f"[{_stamp()}] {folders[step].name}: {e}; retrying every {interval:g} s")
                    told_error = str(e)
                break
            told_error = ""
            loaded[step] = complete[step]
            result.checkpoints.append(step)
            result.jobs_done += len(res.done)
            result.jobs_skipped += len(res.skipped)
            result.failed += res.failed
            result.latency[step] = time.monotonic() - complete_at.pop(step, time.monotonic())
            if res.done:
                result.unbuilt += 1
            echo(
                f"[{_stamp()}] {folders[step].name}: {len(res.done)} jobs loaded, {len(res.skipped)} unchanged, "
                f"{len(res.failed)} failed ({result.latency[step]:.1f} s after it was complete)"
            )
            for _, probe, err in res.failed:
                echo(f"    failed {probe}: {err}")
        if cadence and not stop.is_set() and cadence.due(result.unbuilt, time.monotonic() - last_build):
            echo(f"[{_stamp()}] building ({result.unbuilt} new checkpoints)")
            try:
                build(Path(live.req.warehouse))
                result.builds += 1
                echo(f"[{_stamp()}] built {live.req.warehouse}")
            except TdwError as e:
                result.build_errors.append(str(e))
                echo(f"[{_stamp()}] build failed: {e}")
            result.unbuilt, last_build = 0, time.monotonic()
        if once and time.monotonic() - started >= settle and set(complete) <= set(loaded):
            waiting = sorted(set(folders) - set(complete))
            if waiting:
                echo(f"[{_stamp()}] not complete yet: {', '.join(folders[s].name for s in waiting[:10])}")
            break
        stop.wait(interval)
    return result


def serve_steps(req: IngestRequest, lines: Iterable[str], emit: Callable[[dict], None]) -> int:
    """The Trainer callback's worker: ingest each step named on ``lines`` (one integer a
    line, in the order saved), emitting one JSON-able record per step; end of input ends the
    queue. Returns the exit status (1 when a job failed or the options are wrong)."""
    try:
        live = LiveIngest(req)
    except TdwError as e:
        emit({"fatal": str(e)})
        return 1
    live.warm_up()
    status = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        step = int(line)
        t0 = time.monotonic()
        if step not in live.src.names():
            emit({"step": step, "error": "the checkpoint was removed before it could be ingested (save_total_limit?)"})
            status = 1
            continue
        try:
            res = live.ingest(step)
        except TdwError as e:
            emit({"step": step, "error": str(e)})
            status = 1
            continue
        failed = [f"{probe}: {err}" for _, probe, err in res.failed]
        emit(
            {
                "step": step,
                "done": len(res.done),
                "skipped": len(res.skipped),
                "failed": failed,
                "seconds": round(time.monotonic() - t0, 3),
            }
        )
        status |= bool(failed)
    return status


def emit_json(stream) -> Callable[[dict], None]:
    def emit(record: dict) -> None:
        stream.write(json.dumps(record) + "\n")
        stream.flush()

    return emit
