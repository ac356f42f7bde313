"""Fail points for the crash-safety tests: ``TDW_FAULT_AT=<point>:<step>[:<seconds>]`` makes
the ingest process write ``<point>:<step>`` to ``$TDW_FAULT_FILE`` when it reaches that
point for that checkpoint, then sleep (``seconds``, default forever) so a test can SIGKILL
it there or start a competing process. Unset (always, outside tests), it costs one dict
lookup. Points: ``load`` (checkpoint opened, before any probe), ``probe`` (after a probe
computed, before its load), ``transaction`` (inside the load transaction, rows deleted and
inserted, not committed), ``dbt`` (in the dbt child of ``tdw build``, <step> = the number
of nodes finished) and ``publish`` (dbt succeeded, the snapshot not yet published; step 0).
The marker's line ends with the PID that reached the point (a Ray
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
            return  # a retried job (Ray) passes the point the second time
        with open(marker, "w") as f:
            f.write(f"{point}:{step}:{os.getpid()}\n")
    time.sleep(float(parts[2]) if len(parts) > 2 else 3600)


CORRUPTIONS = ("duplicate", "null", "negative", "inf", "swap")


def corrupt_frames(job: dict, frames: dict) -> dict:
    """``TDW_FAULT_CORRUPT=<probe>:<table>:<kind>[:<column>][@<step>]`` corrupts one row of
    that table in a job of that probe (at that step only, when given) just before the
    quality gate, to test that the gate fails the job: ``duplicate`` appends a copy of the
    first row (its key repeats), ``null`` sets ``column`` NULL there, ``negative`` makes it
    -1 - |value|, ``inf`` makes it +inf, ``swap`` swaps the two columns ``a+b`` (the graph's
    src and dst: a backward edge). Unset, it costs one dict lookup."""
    spec = os.environ.get("TDW_FAULT_CORRUPT")
    if not spec:
        return frames
    spec, _, at = spec.partition("@")
    probe, table, kind, *column = spec.split(":")
    if probe != job.get("probe") or table not in frames or (at and int(at) != job.get("step")):
        return frames
    if kind not in CORRUPTIONS:
        raise ValueError(f"TDW_FAULT_CORRUPT kind {kind!r} is not one of {CORRUPTIONS}")
    import pandas as pd

    frame = frames[table].copy().reset_index(drop=True)
    if kind == "duplicate":
        frame = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    elif kind == "swap":
        a, b = column[0].split("+")
        frame.loc[0, [a, b]] = frame.loc[0, [b, a]].to_numpy()
    else:
        col = column[0]
        if kind == "null":
            frame[col] = frame[col].astype(object) if frame[col].dtype.kind in "iub" else frame[col]
            frame.loc[0, col] = None
        else:
            frame[col] = frame[col].astype("float64")
            frame.loc[0, col] = -1.0 - abs(float(frame.loc[0, col])) if kind == "negative" else float("inf")
    frame.attrs = dict(frames[table].attrs)
    return {**frames, table: frame}
