"""When is a checkpoint of a growing series complete? (``tdw watch``, the Trainer callback)

A training run writes its checkpoints one file at a time, and a probe that reads a folder
half-way through writing it would load a truncated tensor or, worse, a consistent-looking
mix of two saves. So a watcher ingests a folder only once it is complete:

- a folder holding ``trainer_state.json`` (a Hugging Face Trainer checkpoint) is complete
  when that file parses as a JSON object: the Trainer writes it last, after the weights,
  the optimizer and the RNG states (``Trainer._save_checkpoint``); a ``checkpoint-<N>``
  folder without it is still being written (or was abandoned) and is waited for;
- any other folder is complete when its files — names, sizes, modification times, looked
  at recursively — have not changed for ``settle`` seconds of watching (observed, not
  read from the mtimes: ``rsync``/``cp -p`` write files with old times) and it is not empty.

The verdict carries the folder's signature, so a folder rewritten later (a resumed run
saving the same step again) is seen as new once it is complete again. Nothing here reads
a tensor; it only looks at the file system.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

TRAINER_STATE = "trainer_state.json"
TRAINER_FOLDER = re.compile(r"checkpoint-[0-9]+")
MAX_FILES = 10_000  # a checkpoint folder with more files than this is signed by the first ones
Signature = tuple[tuple[str, int, int], ...]


def signature(folder: Path) -> Signature:
    """(relative path, size, mtime ns) of every regular file under ``folder``, sorted;
    () when the folder is gone or empty."""
    out: list[tuple[str, int, int]] = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:  # removed while we looked: the next poll sees the new state
                continue
            out.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
            if len(out) >= MAX_FILES:
                return tuple(sorted(out))
    return tuple(sorted(out))


def trainer_state_complete(folder: Path) -> bool | None:
    """True when ``folder/trainer_state.json`` is a whole JSON object, False while it is not
    (being written), None when the folder is no Trainer checkpoint."""
    path = folder / TRAINER_STATE
    if not path.is_file():
        return False if TRAINER_FOLDER.fullmatch(folder.name) else None
    try:
        return isinstance(json.loads(path.read_bytes()), dict)
    except (OSError, ValueError, RecursionError):
        return False


class Settler:
    """Tracks the folders of one series across polls and says which are complete."""

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic):
        self.settle, self.clock = settle, clock
        self._seen: dict[Path, tuple[Signature, float]] = {}  # folder -> (signature, first seen at)

    def complete(self, folders: dict[int, Path]) -> dict[int, Signature]:
        """{step: signature} of the folders complete now (``folders``: {step: folder})."""
        now, out = self.clock(), {}
        for step, folder in folders.items():
            sig = signature(folder)
            if not sig:
                self._seen.pop(folder, None)
                continue
            trainer = trainer_state_complete(folder)
            if trainer is not None:
                if trainer:
                    out[step] = sig
                continue
            prev = self._seen.get(folder)
            if prev is None or prev[0] != sig:
                self._seen[folder] = (sig, now)
                prev = self._seen[folder]
            if now - prev[1] >= self.settle:
                out[step] = sig
        for gone in set(self._seen) - set(folders.values()):
            del self._seen[gone]
        return out
