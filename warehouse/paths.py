"""Where `tdw` may write: every path a user gives is resolved and confined to the data directory.

The data directory is ``$TDW_DATA_DIR`` (default ``./data``, resolved against the working
directory); ``tdw demo --data-dir`` makes its folder the data directory for that run.
``confine`` resolves a path the way the operating system will when writing it (``..``
components, symlinks anywhere along it, a relative path against the working directory)
and refuses one that lands outside the data directory, with a one-line ``TdwError``. So
``--warehouse ../../etc/x.duckdb``, a symlink inside the data directory pointing out of
it, or ``--out /tmp/elsewhere/report.html`` write nothing. ``confine_warehouse`` also
checks the files and folders derived from a warehouse path (its ``.wal``, its serving
snapshot and the snapshot's temporary name's folder, the dbt work folder ``.tdw-dbt``).

``safe_component`` turns an untrusted string (a model id such as ``EleutherAI/pythia-14m``,
a tensor name from a checkpoint header, a probe name) into one file-name component:
separators, NUL and control characters become ``_``, ``..`` becomes ``__``, a leading dot
``_``; so a name can never climb out of the folder it is joined to.

Paths that are only read (checkpoints, ``--toy-root``, the snapshot that ``tdw sql`` and
``tdw serve`` open) are not confined.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ingest.errors import TdwError

DATA_DIR_ENV = "TDW_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
DBT_WORKDIR = ".tdw-dbt"            # dbt's profile, target and logs, beside the warehouse
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def data_dir() -> Path:
    """The data directory, absolute and with symlinks resolved."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser().resolve()


def confine(path: Path | str, what: str, root: Path | None = None) -> Path:
    """``path`` resolved (symlinks followed, ``..`` applied); TdwError if it is outside the
    data directory (or ``root``)."""
    root = Path(root).resolve() if root is not None else data_dir()
    text = str(path)
    if "\x00" in text:
        raise TdwError(f"{what} {text!r} contains a NUL byte")
    resolved = Path(text).expanduser().resolve()
    if resolved != root and root not in resolved.parents:
        raise TdwError(f"{what} {text} resolves to {resolved}, outside the data directory {root} "
                       f"(set {DATA_DIR_ENV} to write elsewhere)")
    return resolved


def confine_warehouse(path: Path | str, what: str = "--warehouse") -> Path:
    """``confine`` the warehouse file and everything written beside it."""
    wh = confine(path, what)
    if wh == data_dir():
        raise TdwError(f"{what} {path} is the data directory itself, not a DuckDB file in it")
    from warehouse.snapshot import SUFFIX, snapshot_path
    if wh.name.endswith(SUFFIX):
        raise TdwError(f"{what} {path} is a serving snapshot (what readers open), not a working "
                       "warehouse: give the working file it was published from")
    for derived in (wh.with_name(wh.name + ".wal"), snapshot_path(wh), snapshot_path(wh).with_name(
            snapshot_path(wh).name + ".wal"), wh.parent / DBT_WORKDIR):
        confine(derived, f"{what} {path}: {derived.name}")
    return wh


def safe_component(name: str) -> str:
    """One safe file-name component from an untrusted string (see the module docstring)."""
    text = _UNSAFE.sub("_", str(name)).replace("..", "__")
    if text.startswith("."):
        text = "_" + text[1:]
    if not text:
        raise TdwError(f"{name!r} cannot be used in a file name")
    return text[:200]
