"""`tdw watch DIR`: live ingest of a growing checkpoint series (``warehouse.watch``).

The command wires SIGINT and SIGTERM to a clean stop: the first signal lets the checkpoint
in flight finish its jobs (each job is one transaction) and returns; a second one
interrupts at once (the open transaction rolls back, everything committed stays, and a
rerun loads exactly the missing jobs).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from tdw.options import parse_params, plan_options
from warehouse.paths import confine_warehouse


def _handle_stop(stop: threading.Event):
    """Install handlers for SIGINT/SIGTERM; returns a function that restores the old ones."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(
            f"{signal.Signals(signum).name}: stopping after the checkpoint in flight (again to abort at once; "
            "committed jobs are kept)",
            err=True,
        )

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in old.items()]


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("directory", metavar="DIR")
    @plan_options
    @click.option(
        "--interval",
        type=float,
        default=2.0,
        show_default=True,
        help="Seconds between two looks at DIR (polling; no inotify needed).",
    )
    @click.option(
        "--settle",
        type=float,
        default=10.0,
        show_default=True,
        help="A folder without trainer_state.json is complete when its files have not changed for this long.",
    )
    @click.option(
        "--build-every",
        default=None,
        help="Run `tdw build` after N new checkpoints (N), or every N s/m/h when something is new (default: never).",
    )
    @click.option(
        "--once", is_flag=True, help="Ingest what is complete (waiting --settle seconds for the rest), then exit."
    )
    def watch(directory: str, tensors, params, **options):
        """Ingest each new checkpoint of DIR (a growing training output) as soon as it is complete.

        A Trainer checkpoint (checkpoint-<N>/) is complete when its trainer_state.json is
        written; any other checkpoint folder when its files have stopped changing for
        --settle seconds. DIR is polled every --interval seconds. Ctrl-C (or SIGTERM) stops
        after the checkpoint in flight; rerunning resumes exactly where it stopped."""
        from ingest.errors import TdwError
        from warehouse.pipeline import IngestRequest
        from warehouse.watch import Cadence, Polling
        from warehouse.watch import watch as run

        path = Path(directory).expanduser()
        if not path.exists():
            raise TdwError(f"{directory}: no such directory")
        if not path.is_dir():
            raise TdwError(f"{directory}: not a directory (tdw watch watches a folder of checkpoints)")
        options["warehouse"] = confine_warehouse(options["warehouse"])
        cadence = Cadence.parse(options.pop("build_every"))
        polling = Polling(options.pop("interval"), options.pop("settle"), cadence, options.pop("once"))
        req = IngestRequest(str(path), params=parse_params(params, tensors), progress=False, **options)
        stop = threading.Event()
        restore = _handle_stop(stop)
        try:
            result = run(req, polling, stop=stop, echo=click.echo)
        finally:
            restore()
        click.echo(result.summary())
        sys.exit(0 if result.ok else 1)
