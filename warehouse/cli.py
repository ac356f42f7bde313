"""The `tdw` command line: each command parses its options and calls one library function.

Errors a user can cause print one line (``error: ...``) and exit 1; nothing else leaks a
traceback unless TDW_DEBUG=1. Every path a command writes is confined to the data
directory (``warehouse.paths``: ``$TDW_DATA_DIR``, default ``./data``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ingest.errors import TdwError
from warehouse.paths import DATA_DIR_ENV, confine, confine_warehouse

WAREHOUSE_OPT = click.option(
    "--warehouse", "warehouse", type=click.Path(path_type=Path), envvar="TDW_WAREHOUSE",
    default=Path("data/warehouse.duckdb"), show_default=True,
    help="DuckDB file (or set TDW_WAREHOUSE).")


class Cli(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TdwError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: jobs already loaded are kept; rerun to finish the rest", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as e:
            if os.environ.get("TDW_DEBUG") or not _environmental(e):
                raise
            # the disk, the file system or a damaged file, not a bug in tdw: one line, exit 1
            click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(1)

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except Exception as e:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("TDW_DEBUG"):
                raise
            click.echo(f"internal error: {_one_line(e)} (set TDW_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)


def _environmental(e: Exception) -> bool:
    """Errors of the environment (disk full, permissions, a damaged or foreign DuckDB file),
    which a user fixes, as opposed to bugs in tdw."""
    import duckdb
    if isinstance(e, duckdb.InternalException):
        return False
    return isinstance(e, (OSError, duckdb.Error))


def _one_line(e: BaseException) -> str:
    import re
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(e)).strip()
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """tdw: the training-dynamics warehouse. Probes checkpoints, loads DuckDB, derives marts with dbt."""


def _parse_params(items: tuple[str, ...], tensors: str | None) -> dict[str, dict]:
    params: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not probe or not name:
            raise TdwError(f"malformed --param {item!r}: expected probe.name=value")
        params.setdefault(probe, {})[name] = value     # typed by warehouse.params against the default
    if tensors:
        params.setdefault("weights", {})["tensors"] = tensors
    return params


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
        click.echo(f"{out / m['model']['name']}: {len(m['schedule'])} checkpoints, "
                   f"steps {m['schedule'][0]}..{m['schedule'][-1]}")


@main.command()
@click.argument("source")
@click.option("--revisions", default="all", show_default=True,
              help="step<N>, a list, a range step<A>:<B>:<K>, or all.")
@click.option("--probes", default=None, help="Comma-separated probe names (default: every probe).")
@WAREHOUSE_OPT
@click.option("--force", is_flag=True, help="Re-ingest checkpoints even if unchanged.")
@click.option("--tensors", default=None, help="Weights probe: globs/aliases (default unembed,embed).")
@click.option("--param", "params", multiple=True, help="probe.name=value (repeatable).")
@click.option("--toy-root", type=click.Path(path_type=Path), default=None, help="Where toy/<name> models live.")
@click.option("--allow-pickle", is_flag=True, help="Read pytorch_model.bin (weights_only=True).")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted ingest (the default behaviour: completed jobs are skipped).")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another process's lock on the warehouse.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run jobs in this process, or as Ray tasks writing to the Parquet lake.")
@click.option("--lake", type=click.Path(path_type=Path), default=None,
              help="Parquet lake for finished jobs (ray: default <warehouse dir>/lake; local: none).")
@click.option("--ray-address", default=None,
              help="Ray cluster (host:port, auto, ray://…); default: start Ray on this machine.")
@click.option("--ray-cpus", type=int, default=None, help="CPUs of a Ray started here (default: all).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where probes that run the model run (auto: CUDA when there is a GPU).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Model dtype for probes that run the model (default float32; others change the measures).")
def ingest(source, revisions, probes, warehouse, force, tensors, params, toy_root, allow_pickle, resume, wait,
           executor, lake, ray_address, ray_cpus, device, dtype):
    """Run probes on SOURCE's checkpoints and load the results.

    SOURCE is a toy-suite model (toy/neox-2l), a local directory of step<N>/ checkpoints,
    or a Hugging Face repo id (EleutherAI/pythia-14m).
    """
    from warehouse.pipeline import ingest as run
    warehouse = confine_warehouse(warehouse)
    lake = confine(lake, "--lake") if lake is not None else None
    if resume and force:
        raise TdwError("--resume and --force contradict each other")
    result = run(source, revisions=revisions, probes=probes, warehouse=warehouse, toy_root=toy_root,
                 force=force, params=_parse_params(params, tensors), allow_pickle=allow_pickle, wait=wait,
                 executor=executor, lake=lake, ray_address=ray_address, ray_cpus=ray_cpus, device=device,
                 dtype=dtype)
    click.echo(result.summary())
    if not result.ok:
        sys.exit(1)


@main.command("load-lake")
@click.argument("lake", type=click.Path(path_type=Path))
@WAREHOUSE_OPT
@click.option("--model", default=None, help="Only this model's jobs (default: every model in the lake).")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another process's lock on the warehouse.")
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
@click.option("--full-refresh", is_flag=True,
              help="Rebuild the incremental marts from scratch (default: only what changed since the last build).")
def build(warehouse, select, quiet, full_refresh):
    """Build and test every mart with dbt (dbt build)."""
    from warehouse.dbt import build as run
    warehouse = confine_warehouse(warehouse)
    run(warehouse, select, quiet=quiet, full_refresh=full_refresh)
    click.echo(f"built {warehouse}")


@main.command()
@WAREHOUSE_OPT
def check(warehouse):
    """Run every dbt test and summarise failed jobs and flagged checkpoints (fct_data_quality)."""
    from warehouse.check import check as run
    ok, summary = run(confine_warehouse(warehouse))
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
@click.option("--probes", default=None, help="Probes to run (default: every probe).")
@click.option("--full", is_flag=True,
              help="Run the model-running probes on every checkpoint too (default: every sixth and the last).")
def demo(data_dir, retrain, probes, full):
    """Train the toy suite, ingest it with every probe, build the marts, summarise, plot.

    --data-dir must lie inside $TDW_DATA_DIR when that is set; otherwise it becomes the
    data directory for the run."""
    from warehouse.demo import run_demo
    if os.environ.get(DATA_DIR_ENV):
        data_dir = confine(data_dir, "--data-dir")
    else:
        data_dir = data_dir.expanduser().resolve()
        os.environ[DATA_DIR_ENV] = str(data_dir)
    sys.exit(run_demo(data_dir, retrain, probes, full))


from warehouse.cli_serving import register  # noqa: E402  (sql, publish, serve, report, docs)
register(main)

if __name__ == "__main__":
    main()
