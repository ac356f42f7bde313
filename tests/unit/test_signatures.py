"""Narrow signatures: no function of the project takes more than 7 parameters.

A wider one is a plan waiting to be named: its parameters travel together and belong in a
small frozen dataclass (``IngestRequest``, ``ServeOptions``, ``EvalRequest``...). Every
function and method of the packages and of dbt's Python models is read with ``ast``;
``self``/``cls`` do not count, ``*args`` and ``**kwargs`` count one each.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("ingest", "warehouse", "analysis", "tdw", "dbt_project/models")
MAX_PARAMS = 7


def n_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    named = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs) if x.arg not in ("self", "cls")]
    return len(named) + (a.vararg is not None) + (a.kwarg is not None)


def wide_functions(source: str, filename: str = "<src>") -> list[tuple[int, str, int]]:
    """(line, name, parameter count) of every function over the limit."""
    return [
        (node.lineno, node.name, n)
        for node in ast.walk(ast.parse(source, filename=filename))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (n := n_params(node)) > MAX_PARAMS
    ]


def test_the_count():
    src = (
        "def a(p1, p2, p3, p4, p5, p6, p7): pass\n"
        "def b(p1, p2, p3, p4, p5, p6, *rest, **kw): pass\n"
        "class C:\n"
        "    def m(self, p1, p2, p3, p4, p5, p6, p7): pass\n"
        "    @classmethod\n"
        "    def k(cls, p1, /, p2, p3, *, p4, p5, p6, p7, p8): pass\n"
        "async def d(p1, p2, p3, p4, p5, p6, p7, p8): pass\n"
        "def outer():\n"
        "    def inner(p1, p2, p3, p4, p5, p6, p7, *a): pass\n"
    )
    assert [(name, n) for _, name, n in wide_functions(src)] == [("b", 8), ("d", 8), ("k", 8), ("inner", 8)]


def test_no_function_takes_more_than_seven_parameters():
    files = sorted(p for top in TOPS for p in (ROOT / top).rglob("*.py"))
    assert len(files) > 50
    bad = [
        f"{path.relative_to(ROOT)}:{line} {name} takes {n} parameters"
        for path in files
        for line, name, n in wide_functions(path.read_text(), str(path))
    ]
    assert not bad, "group them in a plan object:\n" + "\n".join(bad)
