"""Running dbt on the warehouse: offline, no telemetry, one invocation per process.

Each dbt command runs in a child process (``python -m warehouse.dbt``) through
``dbtRunner``: dbt-duckdb keeps its DuckDB connection for the life of a process, and a
process may not hold the file read-write and read-only at once, so the caller stays free
to read the warehouse afterwards. The profile is written next to the warehouse
(``<warehouse dir>/.tdw-dbt/``) with dbt's target and log folders, so the repository
stays clean and several warehouses can be built from the same project.

A build that fails (a model or test error) or is killed part-way leaves the serving
snapshot as it was: ``build`` publishes only after dbt succeeded, and publishing renames a
complete file into place (``warehouse.snapshot``). For the fault-injection tests,
``TDW_FAULT_AT=dbt:<n>`` stops the dbt child after its n-th node finished, and
``TDW_FAULT_AT=publish:0`` stops the parent after dbt succeeded, before publishing
(``warehouse.faults``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ingest.errors import TdwError
from warehouse import db
from warehouse.faults import fault_point
from warehouse.paths import DBT_WORKDIR

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
ERROR_PREFIX = "TDW_DBT_ERROR: "
THREADS = 4  # dbt runs independent nodes side by side: most of a small build is per-node waiting
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _workdir(warehouse: Path) -> Path:
    work = warehouse.resolve().parent / DBT_WORKDIR
    quoted = str(warehouse.resolve()).replace("'", "''")  # a YAML single-quoted scalar
    try:
        work.mkdir(parents=True, exist_ok=True)
        (work / "profiles.yml").write_text(
            "tdw:\n  target: warehouse\n  outputs:\n    warehouse:\n      type: duckdb\n"
            f"      path: '{quoted}'\n      schema: main\n      threads: {THREADS}\n"
        )
    except OSError as e:
        raise TdwError(
            f"cannot write dbt's work folder {work} ({e.strerror or e}): dbt needs a "
            "writable folder beside the warehouse"
        ) from None
    return work


def _die_with_parent() -> None:
    """In the dbt child, before exec: the kernel kills it when its parent dies (even by
    ``kill -9``), so an orphaned dbt never keeps running and holding the warehouse's lock."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the process group below still lets us kill it
        pass


def _one_line(stderr: str) -> str:
    """The last meaningful line of a child's stderr, without ANSI colour codes."""
    lines = [ANSI.sub("", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Traceback", "File ", "^", "~"))]
    return lines[-1][:300] if lines else ""


def dbt_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    return env


def run_dbt(warehouse: Path, command: str, *args: str, quiet: bool = True) -> None:
    """``dbt <command> <args>`` against ``warehouse`` (``command`` may be two words: "docs generate");
    a failure raises a one-line TdwError."""
    warehouse = Path(warehouse)
    db.check_file(warehouse)
    if not warehouse.exists():
        raise TdwError(f"no warehouse at {warehouse} (run `tdw ingest` first)")
    work = _workdir(warehouse)
    argv = [
        *command.split(),
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(work),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        *args,
    ]
    if quiet:
        argv.insert(0, "--quiet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "warehouse.dbt", json.dumps(argv)],
        env=dbt_env(),
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=_die_with_parent,
        process_group=0,
    )
    try:
        _, stderr = proc.communicate()
    except BaseException:  # Ctrl-C, or the parent is being torn down: take dbt along
        os.killpg(proc.pid, 9)
        proc.wait()
        raise
    if proc.returncode != 0:
        lines = [ANSI.sub("", ln[len(ERROR_PREFIX) :]) for ln in stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
        last = _one_line(stderr)
        if not lines and "lock" in last.lower():
            raise TdwError(
                f"dbt {command} failed: warehouse {warehouse} is locked by another process "
                "(another build or ingest?): let it finish and rerun"
            )
        raise TdwError(lines[0] if lines else f"dbt {command} failed: " + (last or "see " + str(work / "logs")))


def build(warehouse: Path, select: str | None = None, quiet: bool = True, full_refresh: bool = False) -> None:
    """``dbt build``: the models downstream of the raw tables that changed since the last
    successful build (``warehouse.build_state``; everything the first time, after a change of
    the project, or with ``select`` or ``full_refresh``), then their tests; on success, publish
    the serving snapshot. Incremental models process only the slices that changed
    (macros/incremental.sql); ``full_refresh`` rebuilds them from scratch."""
    from warehouse import build_state
    from warehouse.snapshot import SUFFIX, publish, snapshot_path

    if Path(warehouse).name.endswith(SUFFIX):
        raise TdwError(
            f"{warehouse} is a serving snapshot (what readers open), not a working "
            "warehouse: build the working file it was published from"
        )
    if Path(warehouse).is_file():  # a warehouse from before a manifest column was added
        con = db.connect(Path(warehouse))
        try:
            db.ensure_tables(con, [])
        finally:
            con.close()
    work = _workdir(Path(warehouse))
    nodes, state = (None, None) if not Path(warehouse).is_file() else build_state.plan(Path(warehouse), work)
    if select or full_refresh:
        nodes = None
    if nodes != []:  # []: no model to rebuild since the last successful build
        selection = ["--select", select] if select else []
        if nodes:
            selection = ["--select", *nodes, "--exclude-resource-type", "unit_test"]
        run_dbt(warehouse, "build", *selection, *(["--full-refresh"] if full_refresh else []), quiet=quiet)
    if nodes == [] and snapshot_path(Path(warehouse)).is_file():
        return  # the snapshot serving is the last successful build's
    fault_point("publish", 0)
    publish(Path(warehouse))
    if state is not None and not select:
        build_state.save(Path(warehouse), work, state)  # after publishing: a build killed before it is redone


def _fault_callbacks() -> list:
    """With ``TDW_FAULT_AT=dbt:<n>``, a dbt event callback that reaches the fault point
    after the n-th node finished (else none)."""
    if not os.environ.get("TDW_FAULT_AT", "").startswith("dbt:"):
        return []
    finished = [0]

    def on_event(event) -> None:
        if event.info.name == "NodeFinished":
            finished[0] += 1
            fault_point("dbt", finished[0])

    return [on_event]


def _invoke(argv: list[str]) -> str | None:
    """Run dbt in this process; the one-line failure summary, or None on success."""
    from dbt.cli.main import dbtRunner

    res = dbtRunner(callbacks=_fault_callbacks()).invoke(argv)
    if res.success:
        return None
    command = next(a for a in argv if not a.startswith("--"))
    failures = []
    for r in getattr(res.result, "results", None) or []:
        status = str(getattr(r, "status", "")).lower().split(".")[-1]
        if status in ("error", "fail"):
            failures.append(f"{r.node.name}: {(r.message or status).strip().splitlines()[0]}")
    if failures:
        return f"dbt {command} failed ({len(failures)}): " + "; ".join(failures[:5])
    return f"dbt {command} failed: " + (
        str(res.exception).strip().splitlines()[0] if res.exception else "see the dbt log"
    )


if __name__ == "__main__":
    try:
        error = _invoke(json.loads(sys.argv[1]))
    except Exception as e:  # dbt raised instead of reporting: still one line for the parent
        if os.environ.get("TDW_DEBUG"):
            raise
        error = f"dbt failed: {type(e).__name__}: {(ANSI.sub('', str(e)).strip().splitlines() or [''])[0]}"
    if error:
        print(ERROR_PREFIX + error, file=sys.stderr)
        sys.exit(1)
