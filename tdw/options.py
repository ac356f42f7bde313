"""Options shared by several commands of `tdw`."""

from __future__ import annotations

from pathlib import Path

import click

from ingest.errors import TdwError

WAREHOUSE_OPT = click.option(
    "--warehouse",
    "warehouse",
    type=click.Path(path_type=Path),
    envvar="TDW_WAREHOUSE",
    default=Path("data/warehouse.duckdb"),
    show_default=True,
    help="DuckDB file (or set TDW_WAREHOUSE).",
)
WAIT_OPT = click.option(
    "--wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another process's lock on the warehouse.",
)


def parse_params(items: tuple[str, ...], tensors: str | None) -> dict[str, dict]:
    """``--param probe.name=value`` (and ``--tensors``) as {probe: {name: value}}."""
    params: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not probe or not name:
            raise TdwError(f"malformed --param {item!r}: expected probe.name=value")
        params.setdefault(probe, {})[name] = value  # typed by warehouse.params against the default
    if tensors:
        params.setdefault("weights", {})["tensors"] = tensors
    return params


# The options that decide what is measured on each checkpoint, shared by `tdw ingest` and
# `tdw watch` (both build one warehouse.pipeline.IngestRequest from them).
PLAN_OPTS = (
    click.option(
        "--revision-pattern",
        default=None,
        help="How checkpoints are named: a preset (pythia, olmo, olmo2, llm360, trainer) or a regex "
        "with a named group 'step' (default: every preset).",
    ),
    click.option("--probes", default=None, help="Comma-separated probe names (default: every probe)."),
    WAREHOUSE_OPT,
    click.option("--tensors", default=None, help="Weights probe: globs/aliases (default unembed,embed)."),
    click.option("--param", "params", multiple=True, help="probe.name=value (repeatable)."),
    click.option("--toy-root", type=click.Path(path_type=Path), default=None, help="Where toy/<name> models live."),
    click.option("--allow-pickle", is_flag=True, help="Read pytorch_model.bin (weights_only=True)."),
    WAIT_OPT,
    click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="Where probes that run the model run (auto: CUDA when there is a GPU).",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["float32", "bfloat16", "float16"]),
        default=None,
        help="Model dtype for probes that run the model (default float32; others change the measures).",
    ),
)


def plan_options(command):
    """Decorate a command with PLAN_OPTS."""
    for opt in reversed(PLAN_OPTS):
        command = opt(command)
    return command
