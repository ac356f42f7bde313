"""`tdw docs`: dbt's documentation site for the warehouse (lineage graph, model and column
descriptions, tests), generated with ``dbt docs generate --static`` and copied to a folder.

The static page (``index.html``) has the manifest and catalog embedded, so it opens from
the file system with no server; ``manifest.json`` and ``catalog.json`` are copied beside it
for tools that read them (and for ``dbt docs serve``-style viewers). ``dbt docs generate``
reads the catalog from the working file, so it runs like a build: not during an ingest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ingest.errors import TdwError
from warehouse.dbt import _workdir, run_dbt

FILES = ("manifest.json", "catalog.json")


def generate_docs(warehouse: Path, out: Path) -> Path:
    """Generate the docs site of ``warehouse`` into ``out``; returns ``out/index.html``."""
    warehouse, out = Path(warehouse), Path(out)
    if out.exists() and not out.is_dir():
        raise TdwError(f"--out {out} is a file, not a folder")
    run_dbt(warehouse, "docs generate", "--static")
    target = _workdir(warehouse) / "target"
    static = target / "static_index.html"
    if not static.exists():
        raise TdwError(f"dbt docs generate wrote no {static.name} in {target}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(static, out / "index.html")
    for name in FILES:
        if (target / name).exists():
            shutil.copyfile(target / name, out / name)
    return out / "index.html"
