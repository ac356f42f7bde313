"""Fail points for the crash-safety tests: ``TDW_FAULT_AT=<point>:<step>[:<seconds>]`` makes
the ingest process write ``<point>:<step>`` to ``$TDW_FAULT_FILE`` when it reaches that
point for that checkpoint, then sleep (``seconds``, default forever) so a test can SIGKILL
it there or start a competing process. Unset (always, outside tests), it costs one dict
lookup. Points: ``load`` (checkpoint opened, before any probe), ``probe`` (after a probe
computed, before its load), ``transaction`` (inside the load transaction, rows deleted and
inserted, not committed). The marker's line ends with the PID that reached the point (a Ray
worker, say); with ``TDW_FAULT_ONCE=1`` the point fires only while the marker is absent.
"""
from __future__ import annotations

import os
import time


def fault_point(point: str, step: int) -> None:
    spec = os.environ.get("TDW_FAULT_AT")
    if not spec:
        return
    parts = spec.split(":")
    if parts[0] != point or int(parts[1]) != step:
        return
    marker = os.environ.get("TDW_FAULT_FILE")
    if marker:
        if os.environ.get("TDW_FAULT_ONCE") and os.path.exists(marker):
            return                     # a retried job (Ray) passes the point the second time
        with open(marker, "w") as f:
            f.write(f"{point}:{step}:{os.getpid()}\n")
    time.sleep(float(parts[2]) if len(parts) > 2 else 3600)
