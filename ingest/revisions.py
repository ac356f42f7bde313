"""Revision specs: which checkpoints of a model to ingest, and how revisions are named.

A series names its checkpoints in its own way: Pythia ``step<N>``, OLMo
``step<N>-tokens<M>B``, OLMo-2 ``stage1-step<N>-tokens<M>B``, LLM360 ``ckpt_<N>``, a
Hugging Face Trainer ``checkpoint-<N>``. A ``Naming`` turns a revision (a hub branch or a
local folder name) into its step number: by default every preset is tried (whole-name
match, ASCII digits); ``--revision-pattern`` takes a preset name or a regex with a named
group ``step`` (and optionally ``tokens``, a token count, or ``btokens``, in billions).
Names that match no pattern (``main``, ``runs/``) are not checkpoints.

A spec is one of
- ``all``: every checkpoint revision the source has, ordered by N;
- a comma-separated list of items, each ``step<N>``, ``<N>``, a full revision name
  (``checkpoint-500``), or a range ``<A>:<B>:<K>`` of those (A, A+K, ... up to and
  including B; K defaults to 1).
Checkpoints are always ordered by step number, never by listing order.
"""

from __future__ import annotations

import re

from ingest.errors import TdwError

_STEP = re.compile(r"^(?:step)?([0-9]+)$")  # ASCII digits only: int() also takes '١٢٣'
MAX_STEP = 2**63 - 1  # raw.*.step is BIGINT
MAX_LISTED = 1_000_000  # steps one spec may name (a range is materialised)
MAX_PATTERN = 1000

PRESETS = {
    "pythia": r"step(?P<step>\d+)",
    "olmo": r"step(?P<step>\d+)-tokens(?P<btokens>\d+)B",
    "olmo2": r"stage1-step(?P<step>\d+)-tokens(?P<btokens>\d+)B",
    "llm360": r"ckpt_(?P<step>\d+)",
    "trainer": r"checkpoint-(?P<step>\d+)",
}


class Naming:
    """Revision name <-> step number for one series."""

    def __init__(self, pattern: str | None = None):
        if pattern is None or pattern == "auto":
            sources = list(PRESETS.values())
        elif pattern in PRESETS:
            sources = [PRESETS[pattern]]
        else:
            if len(pattern) > MAX_PATTERN:
                raise TdwError(f"--revision-pattern is longer than {MAX_PATTERN} characters")
            sources = [pattern]
        self.text = pattern or "auto"
        self.patterns = []
        for src in sources:
            try:
                rx = re.compile(src, re.ASCII)
            except re.error as e:
                raise TdwError(f"--revision-pattern {pattern!r} is not a valid regex ({e})") from None
            if "step" not in rx.groupindex:
                raise TdwError(
                    f"--revision-pattern {pattern!r} has no named group 'step' "
                    "(write (?P<step>\\d+) where the step number is)"
                )
            self.patterns.append(rx)

    def match(self, name: str) -> tuple[int, int | None] | None:
        """(step, tokens seen or None) of a revision name, or None when it is no checkpoint."""
        for rx in self.patterns:
            m = rx.fullmatch(name)
            if m is None:
                continue
            digits = m.group("step")
            if (
                digits is None
                or not digits.isascii()
                or not digits.isdigit()
                or len(digits) > 19
                or int(digits) > MAX_STEP
            ):
                continue
            groups = m.groupdict()
            tokens = None
            if groups.get("tokens") and groups["tokens"].isdigit():
                tokens = int(groups["tokens"])
            elif groups.get("btokens") and groups["btokens"].isdigit():
                tokens = int(groups["btokens"]) * 10**9
            return int(digits), tokens
        return None

    def step(self, name: str) -> int:
        """The step of a revision name, or a one-line error naming the patterns tried."""
        hit = self.match(name.strip())
        if hit is None:
            raise TdwError(
                f"revision {name!r} matches no revision pattern ({self.text}: "
                f"{' | '.join(rx.pattern for rx in self.patterns)})"
            )
        return hit[0]


def step_of(revision: str) -> int:
    """The step number of a revision name such as ``step1000``."""
    m = _STEP.match(revision.strip())
    if not m or len(m.group(1)) > 19 or int(m.group(1)) > MAX_STEP:
        raise TdwError(
            f"not a checkpoint revision: {revision!r} (expected step<N>, N an ASCII integer up to {MAX_STEP})"
        )
    return int(m.group(1))


def _item_step(item: str, naming: Naming | None) -> int:
    try:
        return step_of(item)
    except TdwError:
        if naming is None:
            raise
        return naming.step(item)


def revision_of(step: int) -> str:
    return f"step{step}"


def parse_spec(spec: str, naming: Naming | None = None) -> list[int] | None:
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
                start, stop = _item_step(parts[0], naming), _item_step(parts[1], naming)
                every = step_of(parts[2]) if len(parts) == 3 else 1
            except TdwError:
                raise TdwError(f"malformed revision range {item!r}: expected step<A>:<B>[:<K>]") from None
            if every <= 0 or stop < start:
                raise TdwError(f"malformed revision range {item!r}: need A <= B and K > 0")
            if (stop - start) // every + 1 + len(steps) > MAX_LISTED:
                raise TdwError(
                    f"revision range {item!r} names {(stop - start) // every + 1} steps, more "
                    f"than {MAX_LISTED}: narrow it or give a step K"
                )
            steps.update(range(start, stop + 1, every))
        else:
            try:
                steps.add(_item_step(item, naming))
            except TdwError as e:
                if naming is not None and naming.text != "auto":
                    raise TdwError(f"malformed revision {item!r}: {e}") from None
                raise TdwError(f"malformed revision {item!r}: expected step<N>, a range or 'all'") from None
    return sorted(steps)


def select(
    available: list[int], spec: str, naming: Naming | None = None, names: dict[int, str] | None = None
) -> list[int]:
    """The steps of ``available`` that ``spec`` names; every named step must exist."""
    wanted = parse_spec(spec, naming)
    have = sorted(set(available))
    if wanted is None:
        return have
    missing = [s for s in wanted if s not in set(have)]
    if missing:

        def name(s):
            return (names or {}).get(s, revision_of(s))

        shown = ", ".join(revision_of(s) for s in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise TdwError(
            f"revision(s) not found: {shown} ({len(have)} available, "
            f"from {name(have[0]) if have else '-'} to {name(have[-1]) if have else '-'})"
        )
    return wanted
