"""A ``transformers.TrainerCallback`` that loads every saved checkpoint into the warehouse.

    from tdw.trainer import TdwCallback
    trainer = Trainer(..., callbacks=[TdwCallback(probes="weights,training_log")])

Training must never wait for a measurement, and a measurement must never crash training.
So the callback hands each save to one background worker process (``python -m tdw.live``,
started at ``on_train_begin`` so its imports overlap training; run ``nice``-r than the
trainer): ``on_save`` writes the step number to the worker's stdin and returns at once.
The worker ingests each checkpoint in save order with the plan ``tdw ingest`` would use
(same probes, ``--param`` values and checks, one transaction a job, exactly-once by
content hash), and answers one JSON line a step, which a reader thread logs (logger
``tdw.trainer``) and keeps in ``results`` / ``errors``.

A process rather than a thread: probes set torch's thread count and run models of their
own, which must not touch the trainer's interpreter; and a crash of the worker is then only
the worker's. ``on_train_end`` closes the queue and waits (``timeout`` seconds, default for
ever) until every saved checkpoint is loaded, then logs a summary; with ``build=True`` it
runs ``tdw build`` after. Errors — wrong options, a locked warehouse, a failed job, a dead
worker — are logged as warnings and listed in ``errors``; none is raised into the Trainer
(options are checked once in the constructor, before training starts).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ingest.errors import TdwError

log = logging.getLogger("tdw.trainer")
ROOT = Path(__file__).resolve().parent.parent  # where the packages live (the worker's sys.path)


class TdwCallback(TrainerCallback):
    """Ingest each checkpoint the Trainer saves, in the background (see the module docstring).

    ``probes``, ``params`` ({probe: {name: value}} or ["probe.name=value", ...]), ``tensors``,
    ``device``, ``dtype``, ``allow_pickle`` and ``wait`` mean what ``tdw ingest``'s options do;
    ``warehouse`` defaults to ``$TDW_WAREHOUSE`` or ``data/warehouse.duckdb``."""

    # the ingest options a callback takes by keyword, with their defaults
    INGEST_OPTIONS: dict[str, Any] = {
        "probes": None,  # str: comma-separated probe names
        "params": None,  # {probe: {name: value}} or ["probe.name=value", ...]
        "tensors": None,  # str: weights probe globs/aliases
        "device": "auto",
        "dtype": None,
        "allow_pickle": False,
        "wait": 600.0,
    }

    def __init__(
        self,
        warehouse: str | Path | None = None,
        *,
        build: bool = False,
        timeout: float | None = None,
        nice: int = 10,
        **ingest: Any,
    ):
        from ingest.probes import PROBES, get_probes
        from tdw.options import parse_params
        from warehouse.params import check_params
        from warehouse.paths import confine_warehouse

        if unknown := sorted(set(ingest) - set(self.INGEST_OPTIONS)):
            raise TdwError(f"TdwCallback: unknown option(s) {', '.join(unknown)}")
        opts = {**self.INGEST_OPTIONS, **ingest}
        probes, params, tensors = opts["probes"], opts["params"], opts["tensors"]
        warehouse = confine_warehouse(warehouse or os.environ.get("TDW_WAREHOUSE", "data/warehouse.duckdb"))
        if isinstance(params, (list, tuple)):
            params = parse_params(tuple(params), tensors)
        elif tensors:
            params = {**(params or {}), "weights": {**(params or {}).get("weights", {}), "tensors": tensors}}
        get_probes(probes)
        checked = check_params(params or {}, PROBES)  # wrong options fail here, before training
        self.spec: dict[str, Any] = dict(
            warehouse=str(warehouse),
            probes=probes,
            params=checked,
            device=opts["device"],
            dtype=opts["dtype"],
            allow_pickle=opts["allow_pickle"],
            wait=opts["wait"],
            revision_pattern="trainer",
            nice=nice,
        )
        self.build, self.timeout = build, timeout
        self.results: list[dict] = []  # one record a checkpoint, as the worker reported it
        self.errors: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._sent: list[int] = []
        self._stderr: deque[str] = deque(maxlen=20)

    # ------------------------------------------------------------------ the worker
    def _start(self, output_dir: str) -> None:
        if self._proc is not None:
            return
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        spec = {**self.spec, "source": str(Path(output_dir).resolve())}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tdw.live", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        except OSError as e:
            self._error(f"cannot start the ingest worker: {e}")
            return
        self._reader = threading.Thread(target=self._read, name="tdw-ingest-reader", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain, args=(self._proc.stderr,), name="tdw-ingest-stderr", daemon=True).start()

    def _drain(self, stream) -> None:
        """Keep the worker's last stderr lines (a full pipe would stall it)."""
        for line in stream:
            if line.strip():
                self._stderr.append(line.rstrip())

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "fatal" in rec:
                self._error(f"ingest worker stopped: {rec['fatal']}")
                continue
            self.results.append(rec)
            if rec.get("error"):
                self._error(f"checkpoint-{rec['step']}: {rec['error']}")
            for f in rec.get("failed", []):
                self._error(f"checkpoint-{rec['step']} {f}")
            if not rec.get("error"):
                log.info(
                    "tdw: checkpoint-%s loaded (%s jobs, %s unchanged) in %.1f s",
                    rec["step"],
                    rec.get("done"),
                    rec.get("skipped"),
                    rec.get("seconds", 0.0),
                )

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        log.warning("tdw: %s", msg)

    def submit(self, output_dir: str, step: int) -> None:
        """Queue one saved checkpoint (never blocks on the ingest, never raises)."""
        self._start(output_dir)
        if self._proc is None or self._proc.stdin is None or self._proc.poll() is not None:
            self._error(f"checkpoint-{step} not ingested: the ingest worker is not running")
            return
        try:
            self._proc.stdin.write(f"{step}\n")
            self._proc.stdin.flush()
            self._sent.append(step)
        except (BrokenPipeError, OSError, ValueError):
            self._error(f"checkpoint-{step} not ingested: the ingest worker is not running")

    def finish(self, timeout: float | None = None) -> bool:
        """Close the queue and wait for the worker to load everything queued; True when every
        queued checkpoint was loaded without error."""
        proc = self._proc
        if proc is None:
            return not self.errors
        try:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._error(f"the ingest worker is still busy after {timeout:g} s: left running (pid {proc.pid})")
            return False
        if self._reader is not None:
            self._reader.join()
        if proc.returncode not in (0, 1):
            last = self._stderr[-1] if self._stderr else "no message"
            self._error(f"the ingest worker died (exit {proc.returncode}): {last}")
        missing = sorted(set(self._sent) - {r["step"] for r in self.results})
        if missing and proc.returncode in (0, 1):
            self._error(f"not ingested: {', '.join(f'checkpoint-{s}' for s in missing)}")
        if self.build and not self.errors:
            self._build()
        log.info("tdw: %d checkpoints ingested, %d errors", len(self.results), len(self.errors))
        self._proc = None
        return not self.errors

    def _build(self) -> None:
        from warehouse.dbt import build

        try:
            build(Path(self.spec["warehouse"]), None, quiet=True)
        except TdwError as e:
            self._error(f"build failed: {e}")

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._start(args.output_dir)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.submit(args.output_dir, state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            try:
                self.finish(self.timeout)
            except Exception as e:  # never into the Trainer
                self._error(f"finishing the ingest failed: {type(e).__name__}: {e}")
