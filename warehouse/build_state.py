"""What a `tdw build` must run: the dbt models downstream of the raw tables that changed.

Every mart is incremental (dbt_project/macros/incremental.sql), so running a model whose
inputs did not change costs no computation, but dbt still pays a fixed cost per node (a
query or two, the model's tests, its persisted docs): with ~240 nodes that fixed cost alone
is tens of seconds, the same after one new checkpoint as after a hundred. So `build`
selects the models downstream of the raw tables whose rows changed since the last
successful build, from the manifest's run ids: a job replaces its rows in one transaction
and records a successful run, so a table's rows change only with a new successful run of a
probe that writes it. Models that read those tables only through int_checkpoint_versions
(every incremental model reads the manifest's run ids there) are not selected for a change
of another probe's rows: their own inputs did not change. Views are not rebuilt (their SQL
did not change), nor are unit tests run (they test the SQL, not the rows: they ran when this
project was last built whole), nor the staging views' tests (a job's rows passed the ingest
quality gate, which checks their keys); the data tests of every selected model run.

The state (the successful run ids of the last successful build, and a hash of the dbt
project and of the Python it calls) is a JSON file in dbt's work folder beside the
warehouse, written only after dbt succeeded, from run ids read before dbt started (a job
that lands in between is selected again next time). Everything is built when there is no
state or manifest, when the project changed, when a recorded run is gone from the warehouse
(another file was put in its place) or on a full refresh. A superset is always safe: the
incremental models skip what they already hold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from warehouse import db

ROOT = Path(__file__).resolve().parent.parent
STATE = "build_state-{}.json"  # one per warehouse file of the folder
RUNS_SOURCE = "ingest_runs"
VERSIONS_VIEW = "int_checkpoint_versions"  # every incremental model reads run ids here


def project_hash() -> str:
    """sha256 of the dbt project and of the Python packages its Python models import."""
    h = hashlib.sha256()
    files = [p for d in ("dbt_project/models", "dbt_project/macros", "analysis") for p in (ROOT / d).rglob("*")]
    for p in sorted([*files, ROOT / "dbt_project" / "dbt_project.yml"]):
        if p.is_file() and p.suffix in (".sql", ".yml", ".py", ".md") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def current_runs(warehouse: Path) -> dict[str, list[str] | None]:
    """run id -> the raw tables its successful job wrote rows to (the manifest's ``rows``;
    None when the manifest does not say)."""
    con = db.connect(warehouse, read_only=True)
    try:
        rows = con.execute("select run_id, rows from raw.ingest_runs where status = 'success'").fetchall()
    finally:
        con.close()
    out: dict[str, list[str] | None] = {}
    for run_id, counts in rows:
        try:
            out[run_id] = sorted(t for t, n in json.loads(counts).items() if n)
        except (TypeError, ValueError, AttributeError):
            out[run_id] = None
    return out


def _downstream(manifest: dict, tables: set[str]) -> list[str]:
    """Names of the models downstream of the sources ``tables`` and of the manifest
    (ingest_runs), not through int_checkpoint_versions."""
    roots = [
        uid
        for uid, src in manifest["sources"].items()
        if (src.get("identifier") or src["name"]) in tables | {RUNS_SOURCE}
    ]
    children, nodes = manifest["child_map"], manifest["nodes"]
    seen, todo, models = set(roots), list(roots), set()
    while todo:
        for child in children.get(todo.pop(), []):
            if child in seen or not child.startswith("model."):
                continue
            seen.add(child)
            name = nodes[child]["name"]
            if name == VERSIONS_VIEW:
                continue  # every incremental model reads it, and each has its own sources
            todo.append(child)
            if nodes[child]["config"].get("materialized") != "view":
                models.add(name)  # a view of an unchanged project needs no rebuild
    return sorted(models)


def plan(warehouse: Path, work: Path) -> tuple[list[str] | None, dict]:
    """(the models to build, or None for every node; the state to save once the build
    succeeded)."""
    now = current_runs(warehouse)
    state = {"project": project_hash(), "runs": sorted(now)}
    try:
        old = json.loads((work / STATE.format(warehouse.name)).read_text())
        manifest = json.loads((work / "target" / "manifest.json").read_text())
    except (OSError, ValueError):
        return None, state
    before = set(old.get("runs", []))
    if old.get("project") != state["project"] or not before <= set(now):
        return None, state  # the project changed, or a recorded run is gone: another warehouse
    new = [now[r] for r in now if r not in before]
    if not new:
        return [], state
    if any(t is None for t in new):
        return None, state
    return _downstream(manifest, {t for ts in new for t in ts}), state


def save(warehouse: Path, work: Path, state: dict) -> None:
    path = work / STATE.format(warehouse.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
