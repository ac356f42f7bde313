"""Path confinement and safe file-name components (warehouse/paths.py), on real folders."""

from __future__ import annotations

import os

import pytest

from ingest.errors import TdwError
from warehouse.paths import confine, confine_warehouse, data_dir, safe_component


@pytest.fixture
def layout(tmp_path, monkeypatch):
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    monkeypatch.setenv("TDW_DATA_DIR", str(root))
    monkeypatch.chdir(root)
    return root.resolve(), outside.resolve()


def test_paths_inside_resolve_and_paths_outside_are_refused(layout):
    root, outside = layout
    assert data_dir() == root
    assert confine("w.duckdb", "--warehouse") == root / "w.duckdb"  # relative: against the cwd
    assert confine(root / "a" / ".." / "b" / "c.html", "--out") == root / "b" / "c.html"
    assert confine(root, "--out") == root
    for bad in (
        "../outside/w.duckdb",
        "../../etc/x.duckdb",
        str(outside / "r.html"),
        "/tmp/elsewhere/report.html",
        str(root) + "-sibling/x",
    ):  # a prefix is not a parent
        with pytest.raises(TdwError, match="outside the data directory") as err:
            confine(bad, "--out")
        assert "\n" not in str(err.value)
    with pytest.raises(TdwError, match="NUL"):
        confine("w\x00.duckdb", "--warehouse")


def test_symlinks_are_followed(layout):
    root, outside = layout
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TdwError, match="outside the data directory"):
        confine(root / "link" / "w.duckdb", "--warehouse")
    (root / "inner").mkdir()
    (root / "ok").symlink_to(root / "inner", target_is_directory=True)  # a link that stays inside
    assert confine(root / "ok" / "w.duckdb", "--warehouse") == root / "inner" / "w.duckdb"


def test_files_derived_from_the_warehouse_are_confined_too(layout):
    root, outside = layout
    assert confine_warehouse("w.duckdb") == root / "w.duckdb"
    (root / "w.serving.duckdb").symlink_to(outside / "snap.duckdb")
    with pytest.raises(TdwError, match="w.serving.duckdb"):
        confine_warehouse("w.duckdb")
    (root / "sub").mkdir()
    (root / "sub" / ".tdw-dbt").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TdwError, match=".tdw-dbt"):
        confine_warehouse("sub/w.duckdb")
    with pytest.raises(TdwError, match="data directory itself"):
        confine_warehouse(root)


def test_default_data_dir_is_data_under_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("TDW_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_dir() == (tmp_path / "data").resolve()
    with pytest.raises(TdwError):
        confine("warehouse.duckdb", "--warehouse")  # beside data/, not in it
    assert confine("data/warehouse.duckdb", "--warehouse") == tmp_path.resolve() / "data" / "warehouse.duckdb"


@pytest.mark.parametrize(
    "name",
    [
        "EleutherAI/pythia-14m",
        "../../etc/passwd",
        "..",
        ".",
        ".hidden",
        "a\x00b",
        "gpt_neox.layers.0/../../x.weight",
        "a\\..\\b",
        "line\nbreak",
    ],
)
def test_safe_component_stays_one_component(tmp_path, name):
    part = safe_component(name)
    assert part and "/" not in part and "\\" not in part and "\x00" not in part and ".." not in part
    assert not part.startswith(".") and part.isprintable()
    assert (tmp_path / part).resolve().parent == tmp_path.resolve()
    assert os.path.basename(part) == part


def test_safe_component_keeps_ordinary_names():
    assert safe_component("toy/neox-2l") == "toy_neox-2l"
    assert safe_component("lm_head.weight") == "lm_head.weight"
    with pytest.raises(TdwError):
        safe_component("")
