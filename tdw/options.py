"""Options shared by several commands of `tdw`."""

from __future__ import annotations

from pathlib import Path

import click

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
