"""The serving commands of `tdw`: sql (on the snapshot), publish, serve, report, docs.

Attached to the group of ``tdw/cli.py`` by :func:`register`; ``sql`` replaces the
group's first version with one that has ``--timeout`` and ``--working``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tdw.errors import TdwError
from tdw.options import WAREHOUSE_OPT
from warehouse.paths import confine, confine_warehouse


@click.command()
@click.argument("query")
@WAREHOUSE_OPT
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", type=int, default=200, show_default=True, help="Rows shown in table format.")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Interrupt the query after this many seconds."
)
@click.option(
    "--working",
    is_flag=True,
    help="Read the working file (raw and staging tables too) instead of the serving snapshot; "
    "fails while ingest or build holds it.",
)
def sql(query, warehouse, fmt, max_rows, timeout, working):
    """Run read-only SQL on the warehouse's serving snapshot and print the result."""
    from warehouse.sql import format_frame
    from warehouse.sql import query as run

    click.echo(format_frame(run(warehouse, query, timeout=timeout, working=working), fmt, max_rows))


@click.command()
@WAREHOUSE_OPT
def publish(warehouse):
    """Publish the serving snapshot of the marts now (`tdw build` does it after every build)."""
    from warehouse.snapshot import publish as run
    from warehouse.snapshot import sqlalchemy_uri

    warehouse = confine_warehouse(warehouse)
    info = run(warehouse)
    click.echo(
        f"published {info.path}: {len(info.tables)} tables, "
        f"{sum(info.tables.values())} rows in {info.seconds:.2f} s\n"
        f"SQLAlchemy: {sqlalchemy_uri(warehouse)}"
    )


@click.command()
@WAREHOUSE_OPT
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs --allow-remote and --password.",
)
@click.option("--port", type=int, default=5433, show_default=True, help="TCP port (0: any free port).")
@click.option("--allow-remote", is_flag=True, help="Accept connections from other machines.")
@click.option("--user", default="tdw", show_default=True, help="User name when a password is set.")
@click.option(
    "--password",
    default=None,
    envvar="TDW_SERVE_PASSWORD",
    help="Require this password (MD5 auth); or set TDW_SERVE_PASSWORD.",
)
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Interrupt any query after this many seconds."
)
@click.option(
    "--idle-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Disconnect a client that sends nothing for this many seconds.",
)
def serve(warehouse, **options):
    """Serve the snapshot read-only over the PostgreSQL wire protocol (psql, BI tools)."""
    from warehouse.serve import ServeOptions, make_server

    opts = ServeOptions(**options)
    server = make_server(warehouse, opts)
    bound_host, bound_port = server.server_address[:2]
    auth = f"user {opts.user} with a password" if opts.password else "any user, no password"
    click.echo(
        f"serving {server.conn.path} read-only on postgresql://{bound_host}:{bound_port}/tdw ({auth}); Ctrl-C stops"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


@click.command()
@WAREHOUSE_OPT
@click.option(
    "--models", required=True, help="Comma-separated model ids (see `tdw sql 'select * from marts.dim_checkpoint'`)."
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/report/report.html"), show_default=True)
@click.option("--normalise-steps", is_flag=True, help="Plot steps as a fraction of each model's training length.")
@click.option(
    "--graph-steps",
    default=None,
    help="Checkpoints at which to draw the graph (comma-separated steps; default: first, middle, last).",
)
def report(warehouse, models, out, normalise_steps, graph_steps):
    """Write a self-contained HTML report comparing models, with its figures as PNG files."""
    from analysis.report import write_report

    steps = None
    if graph_steps:
        try:
            steps = [int(s) for s in graph_steps.split(",") if s.strip()]
        except ValueError:
            raise TdwError(f"--graph-steps must be comma-separated integers, got {graph_steps!r}") from None
    result = write_report(
        warehouse,
        [m.strip() for m in models.split(",") if m.strip()],
        confine(out, "--out"),
        normalise_steps=normalise_steps,
        graph_steps=steps,
    )
    click.echo(f"{result.html} ({len(result.sections)} sections, {len(result.figures)} figures)")


@click.command()
@WAREHOUSE_OPT
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/docs"), show_default=True)
def docs(warehouse, out):
    """Generate dbt's documentation site (lineage, column descriptions) into --out."""
    from warehouse.docs import generate_docs

    index = generate_docs(confine_warehouse(warehouse), confine(out, "--out"))
    click.echo(f"{index} (open it, or `python -m http.server -d {out}`)")


def register(group: click.Group) -> None:
    for command in (sql, publish, serve, report, docs):
        group.add_command(command)
