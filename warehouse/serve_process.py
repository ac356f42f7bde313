"""Start `tdw serve` as a child process on a free port: what the client tests, the speed
benchmark and the Superset check share. Standard library only (like ``warehouse/__init__``),
so a script run with another project's Python, such as Superset's, can import it too."""

from __future__ import annotations

import subprocess
from pathlib import Path


def start_serve(
    command: list[str], warehouse: Path, *options: str, cwd: Path | None = None
) -> tuple[subprocess.Popen, int]:
    """``command`` (``[".venv/bin/tdw"]`` or ``[python, "-m", "tdw"]``) ``serve`` on port 0 with
    ``options``; the process and the port it printed once listening."""
    proc = subprocess.Popen(
        [*command, "serve", "--port", "0", *options, "--warehouse", str(warehouse)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if "postgresql://" not in line:
        proc.kill()
        raise RuntimeError(f"tdw serve did not start: {line} {proc.stderr.read()}")
    return proc, int(line.split("postgresql://")[1].split(":")[1].split("/")[0])
