"""Start `tdw serve` as a child process on a free port (standard library only, so scripts run
with another project's Python, such as Superset's, can use it too)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def start_serve(command: list[str], warehouse: Path, cwd: Path | None = None) -> tuple[subprocess.Popen, int]:
    """``command`` (e.g. ``[".venv/bin/tdw"]`` or ``[python, "-m", "tdw"]``) ``serve`` on port 0;
    the process and the port it printed once listening."""
    proc = subprocess.Popen(
        [*command, "serve", "--port", "0", "--warehouse", str(warehouse)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if "postgresql://" not in line:
        proc.kill()
        raise SystemExit(f"tdw serve did not start: {line} {proc.stderr.read()}")
    return proc, int(line.split("postgresql://")[1].split(":")[1].split("/")[0])
