"""Revision specs: which checkpoints of a model to ingest.

A spec is one of
- ``all``: every ``step<N>`` revision the source has, ordered by N;
- a comma-separated list of items, each ``step<N>``, ``<N>``, or a range
  ``step<A>:<B>:<K>`` (A, A+K, ... up to and including B; ``step`` prefixes optional,
  K defaults to 1).
Checkpoints are always ordered by step number, never by listing order.
"""
from __future__ import annotations

import re

from ingest.errors import TdwError

_STEP = re.compile(r"^(?:step)?([0-9]+)$")    # ASCII digits only: int() also takes '١٢٣'
MAX_STEP = 2**63 - 1                          # raw.*.step is BIGINT
MAX_LISTED = 1_000_000                        # steps one spec may name (a range is materialised)


def step_of(revision: str) -> int:
    """The step number of a revision name such as ``step1000``."""
    m = _STEP.match(revision.strip())
    if not m or len(m.group(1)) > 19 or int(m.group(1)) > MAX_STEP:
        raise TdwError(f"not a checkpoint revision: {revision!r} (expected step<N>, N an ASCII "
                       f"integer up to {MAX_STEP})")
    return int(m.group(1))


def revision_of(step: int) -> str:
    return f"step{step}"


def parse_spec(spec: str) -> list[int] | None:
    """Steps named by ``spec`` in ascending order, or None for ``all``."""
    spec = spec.strip()
    if spec in ("all", ""):
        return None
    steps: set[int] = set()
    for item in spec.split(","):
        item = item.strip()
        if ":" in item:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]):
                raise TdwError(f"malformed revision range {item!r}: expected step<A>:<B>[:<K>]")
            try:
                start, stop = step_of(parts[0]), step_of(parts[1])
                every = step_of(parts[2]) if len(parts) == 3 else 1
            except TdwError:
                raise TdwError(f"malformed revision range {item!r}: expected step<A>:<B>[:<K>]") from None
            if every <= 0 or stop < start:
                raise TdwError(f"malformed revision range {item!r}: need A <= B and K > 0")
            if (stop - start) // every + 1 + len(steps) > MAX_LISTED:
                raise TdwError(f"revision range {item!r} names {(stop - start) // every + 1} steps, more "
                               f"than {MAX_LISTED}: narrow it or give a step K")
            steps.update(range(start, stop + 1, every))
        else:
            try:
                steps.add(step_of(item))
            except TdwError:
                raise TdwError(f"malformed revision {item!r}: expected step<N>, a range or 'all'") from None
    return sorted(steps)


def select(available: list[int], spec: str) -> list[int]:
    """The steps of ``available`` that ``spec`` names; every named step must exist."""
    wanted = parse_spec(spec)
    have = sorted(set(available))
    if wanted is None:
        return have
    missing = [s for s in wanted if s not in set(have)]
    if missing:
        shown = ", ".join(revision_of(s) for s in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise TdwError(f"revision(s) not found: {shown} ({len(have)} available, "
                       f"from {revision_of(have[0]) if have else '-'} to {revision_of(have[-1]) if have else '-'})")
    return wanted
