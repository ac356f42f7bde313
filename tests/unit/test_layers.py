"""Package dependencies flow one way: ingest <- warehouse <- analysis <- tdw (DESIGN.md).

Every module's imports are read with ``ast`` — function-level and ``TYPE_CHECKING`` imports
included, since a lazy import is still a dependency — and any edge from a lower package to
a higher one fails. dbt's Python models are run by the warehouse, so what they import
(directly or through the project modules they import) must import nothing of ``warehouse``
or ``tdw``: they call pure functions. No module imports below its first definition (the
bottom-of-file imports that dodged cycles).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["ingest", "warehouse", "analysis", "tdw"]  # each may import only those before it
RANK = {name: i for i, name in enumerate(ORDER)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts) if path.is_relative_to(ROOT) else [path.stem]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]  # `from pkg import mod`
    return out


def _python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


LAYERED = _python_files(*ORDER)


def test_every_package_is_found():
    assert {p.relative_to(ROOT).parts[0] for p in LAYERED} == set(ORDER)


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path: Path):
    own = RANK[path.relative_to(ROOT).parts[0]]
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in _imports(path)
        if RANK.get(name.split(".")[0], -1) > own
    ]
    assert not bad, "\n".join(bad)


def _project_closure(names: set[str]) -> set[Path]:
    """The project files reached from module names, following their imports."""
    seen: set[Path] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name.split(".")[0] not in RANK:
            continue
        base = ROOT.joinpath(*name.split("."))
        for f in (base.with_suffix(".py"), base / "__init__.py"):
            if f.is_file() and f not in seen:
                seen.add(f)
                todo += [n for _, n in _imports(f)]
    return seen


DBT_MODELS = _python_files("dbt_project/models")


def test_dbt_python_models_are_found():
    assert DBT_MODELS


@pytest.mark.parametrize("path", DBT_MODELS, ids=lambda p: p.name)
def test_dbt_python_models_call_pure_functions(path: Path):
    direct = {n for _, n in _imports(path)}
    reached = {f.relative_to(ROOT).parts[0] for f in _project_closure(direct)}
    assert not reached & {"warehouse", "tdw"}, f"{path.name} reaches {sorted(reached)}"
    assert not {n.split(".")[0] for n in direct} & {"warehouse", "tdw"}


def _late_imports(path: Path) -> list[int]:
    """Module-level imports after the first definition (a def, a class, an assignment):
    imports placed below code to dodge an import cycle. Setup calls before the imports they
    configure (``matplotlib.use("Agg")``) are not definitions."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.AugAssign)
    body = ast.parse(path.read_text()).body
    first_def = next((i for i, n in enumerate(body) if isinstance(n, defs)), len(body))
    return [n.lineno for n in body[first_def:] if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_bottom_of_file_imports(path: Path):
    assert not _late_imports(path), f"{path.relative_to(ROOT)}: imports at lines {_late_imports(path)}"


def test_the_checks_catch_a_bad_edge(tmp_path: Path):
    """The walker sees a function-level import and a relative one."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from analysis.plots import write_figures\n\nimport os\nfrom . import x\n")
    names = [n for _, n in _imports(f)]
    assert "analysis.plots" in names and "os" in names
    assert _late_imports(f) == [4, 5]
