"""The `tdw` command line: each command parses its options and calls one library function.

Errors a user can cause print one line (``error: ...``) and exit 1; nothing else leaks a
traceback unless TDW_DEBUG=1 (``tdw.errors``). Every path a command writes is confined
to the data directory (``warehouse.paths``: ``$TDW_DATA_DIR``, default ``./data``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tdw.cli_serving import register
from tdw.cli_watch import register as register_watch
from tdw.errors import Cli, TdwError
from tdw.options import WAIT_OPT, WAREHOUSE_OPT, parse_params, plan_options
from warehouse.paths import DATA_DIR_ENV, confine, confine_warehouse


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """tdw: the training-dynamics warehouse. Probes checkpoints, loads DuckDB, derives marts with dbt."""


@main.command("toy-suite")
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/toy-suite"), show_default=True)
@click.option("--steps", type=int, default=None, help="Training steps per model (default 1536).")
@click.option("--every", type=int, default=None, help="Checkpoint spacing after the log-spaced start.")
def toy_suite(out: Path, steps: int | None, every: int | None):
    """Train the toy checkpoint suite (small GPT-NeoX models, seeded, deterministic)."""
    from ingest.toy.train import TrainSpec, train_suite

    out = confine(out, "--out")
    spec = TrainSpec()
    if steps is not None or every is not None:
        if (steps is not None and steps < 1) or (every is not None and every < 1):
            raise TdwError("--steps and --every must be positive")
        spec = TrainSpec(total_steps=steps or spec.total_steps, every=every or spec.every)
    metas = train_suite(out, spec)
    for m in metas:
        click.echo(
            f"{out / m['model']['name']}: {len(m['schedule'])} checkpoints, "
            f"steps {m['schedule'][0]}..{m['schedule'][-1]}"
        )


@main.command()
@click.argument("source")
@click.option("--revisions", default="all", show_default=True, help="step<N>, a list, a range step<A>:<B>:<K>, or all.")
@plan_options
@click.option("--force", is_flag=True, help="Re-ingest checkpoints even if unchanged.")
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted ingest (the default behaviour: completed jobs are skipped)."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Run jobs in this process, or as Ray tasks writing to the Parquet lake.",
)
@click.option(
    "--lake",
    type=click.Path(path_type=Path),
    default=None,
    help="Parquet lake for finished jobs (ray: default <warehouse dir>/lake; local: none).",
)
@click.option(
    "--ray-address", default=None, help="Ray cluster (host:port, auto, ray://…); default: start Ray on this machine."
)
@click.option("--ray-cpus", type=int, default=None, help="CPUs of a Ray started here (default: all).")
def ingest(source: str, resume: bool, tensors: str | None, params: tuple[str, ...], **options):
    """Run probes on SOURCE's checkpoints and load the results.

    SOURCE is a toy-suite model (toy/neox-2l), a local directory of step<N>/ checkpoints,
    or a Hugging Face repo id (EleutherAI/pythia-14m).
    """
    from warehouse.pipeline import IngestRequest
    from warehouse.pipeline import ingest as run

    options["warehouse"] = confine_warehouse(options["warehouse"])
    if options["lake"] is not None:
        options["lake"] = confine(options["lake"], "--lake")
    if resume and options["force"]:
        raise TdwError("--resume and --force contradict each other")
    # every other option is a field of the request, by the same name
    result = run(IngestRequest(source, params=parse_params(params, tensors), **options))
    click.echo(result.summary())
    if not result.ok:
        sys.exit(1)


@main.command("load-lake")
@click.argument("lake", type=click.Path(path_type=Path))
@WAREHOUSE_OPT
@click.option("--model", default=None, help="Only this model's jobs (default: every model in the lake).")
@WAIT_OPT
def load_lake(lake, warehouse, model, wait):
    """Load the finished jobs of a Parquet lake (written by workers elsewhere) into the warehouse."""
    from warehouse.pipeline import load_lake as run

    warehouse = confine_warehouse(warehouse)
    loaded, failed, present = run(lake, warehouse, model, wait=wait)
    click.echo(f"{lake}: {loaded} jobs loaded, {failed} recorded as failed, {present} already present")
    if failed:
        sys.exit(1)


@main.command()
@WAREHOUSE_OPT
@click.option("--select", default=None, help="dbt node selection (default: everything).")
@click.option("--quiet/--verbose", default=False, help="Hide dbt's per-model progress.")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild the incremental marts from scratch (default: only what changed since the last build).",
)
def build(warehouse, select, quiet, full_refresh):
    """Build and test every mart with dbt (dbt build)."""
    from warehouse.dbt import build as run

    warehouse = confine_warehouse(warehouse)
    run(warehouse, select, quiet=quiet, full_refresh=full_refresh)
    click.echo(f"built {warehouse}")


@main.command()
@WAREHOUSE_OPT
@click.option(
    "--stale-as-warnings",
    is_flag=True,
    help="Report stale and inconsistent checkpoints (identical_checkpoint, stale_tensor, discontinuity) as warnings.",
)
def check(warehouse, stale_as_warnings):
    """Run every dbt test and summarise failed jobs and flagged checkpoints (fct_data_quality)."""
    from warehouse.check import check as run

    ok, summary = run(confine_warehouse(warehouse), stale_as_warnings=stale_as_warnings)
    click.echo(summary)
    sys.exit(0 if ok else 1)


@main.command()
@WAREHOUSE_OPT
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/figures"), show_default=True)
@click.option("--tensor", default="lm_head.weight", show_default=True)
def figures(warehouse, out, tensor):
    """Write the density heatmap and MSD curves of every model as PNG files."""
    from analysis.plots import write_figures

    for p in write_figures(warehouse, confine(out, "--out"), tensor):
        click.echo(str(p))


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--retrain", is_flag=True, help="Train the toy suite again even if present.")
@click.option("--probes", default=None, help="Probes to run (default: every probe, llc included).")
@click.option(
    "--full",
    is_flag=True,
    hidden=True,
    help="Kept so that older scripts run: every probe runs on every checkpoint anyway.",
)
def demo(data_dir, retrain, probes, full):
    """Train the toy suite, ingest it with every probe, build the marts, summarise, plot.

    --data-dir must lie inside $TDW_DATA_DIR when that is set; otherwise it becomes the
    data directory for the run."""
    from tdw.demo import run_demo

    if os.environ.get(DATA_DIR_ENV):
        data_dir = confine(data_dir, "--data-dir")
    else:
        data_dir = data_dir.expanduser().resolve()
        os.environ[DATA_DIR_ENV] = str(data_dir)
    sys.exit(run_demo(data_dir, retrain, probes))


register(main)  # sql, publish, serve, report, docs
register_watch(main)  # watch

if __name__ == "__main__":
    main()
