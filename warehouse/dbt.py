"""Running dbt on the warehouse: offline, no telemetry, one invocation per process.

Each dbt command runs in a child process (``python -m warehouse.dbt``) through
``dbtRunner``: dbt-duckdb keeps its DuckDB connection for the life of a process, and a
process may not hold the file read-write and read-only at once, so the caller stays free
to read the warehouse afterwards. The profile is written next to the warehouse
(``<warehouse dir>/.tdw-dbt/``) with dbt's target and log folders, so the repository
stays clean and several warehouses can be built from the same project.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ingest.errors import TdwError
from warehouse import db

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
ERROR_PREFIX = "TDW_DBT_ERROR: "


def _workdir(warehouse: Path) -> Path:
    work = warehouse.resolve().parent / ".tdw-dbt"
    work.mkdir(parents=True, exist_ok=True)
    (work / "profiles.yml").write_text(
        "tdw:\n  target: warehouse\n  outputs:\n    warehouse:\n      type: duckdb\n"
        f"      path: '{warehouse.resolve()}'\n      schema: main\n      threads: 1\n")
    return work


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
    argv = [*command.split(), "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(work),
            "--target-path", str(work / "target"), "--log-path", str(work / "logs"), *args]
    if quiet:
        argv.insert(0, "--quiet")
    proc = subprocess.run([sys.executable, "-m", "warehouse.dbt", json.dumps(argv)], env=dbt_env(),
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = [ln[len(ERROR_PREFIX):] for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
        raise TdwError(lines[0] if lines else f"dbt {command} failed: "
                       + (proc.stderr.strip().splitlines() or ["see " + str(work / "logs")])[-1])


def build(warehouse: Path, select: str | None = None, quiet: bool = True) -> None:
    """``dbt build``: every model, then its tests; on success, publish the serving snapshot."""
    run_dbt(warehouse, "build", *(["--select", select] if select else []), quiet=quiet)
    from warehouse.snapshot import publish
    publish(Path(warehouse))


def _invoke(argv: list[str]) -> str | None:
    """Run dbt in this process; the one-line failure summary, or None on success."""
    from dbt.cli.main import dbtRunner

    res = dbtRunner().invoke(argv)
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
    return f"dbt {command} failed: " + (str(res.exception).strip().splitlines()[0] if res.exception
                                        else "see the dbt log")


if __name__ == "__main__":
    error = _invoke(json.loads(sys.argv[1]))
    if error:
        print(ERROR_PREFIX + error, file=sys.stderr)
        sys.exit(1)
