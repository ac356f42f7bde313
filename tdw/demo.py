"""The main job on the embedded default: train the toy suite, ingest it with every probe,
build the marts, print a summary and write the figures."""

from __future__ import annotations

from pathlib import Path

import click

from analysis.plots import write_figures
from analysis.report import write_report
from analysis.summary import summary_frame
from ingest.probes import get_probes
from ingest.toy.train import SUITE, train_suite
from warehouse.dbt import build
from warehouse.pipeline import ingest
from warehouse.snapshot import serving_path
from warehouse.sql import format_frame


def demo_plan(probes: str | None, steps: list[int]) -> list[tuple[str, str]]:
    """(probes, revisions) passes: every chosen probe on every checkpoint, so no signal's
    step is located more coarsely than the checkpoint schedule (dense across each model's
    induction transition) allows; the one exception is the opt-in ``llc`` (SGLD: 4 chains
    x 40 draws of forward+backward passes, ~5 s a toy checkpoint), which runs on every
    fourth checkpoint and the last, with the same hyperparameters on each."""
    chosen = get_probes(probes or "all")
    cheap = ",".join(p.name for p in chosen if p.name != "llc")
    subset = ",".join(f"step{s}" for s in sorted(set(steps[::4]) | {steps[-1]}))
    passes = [(cheap, "all")] if cheap else []
    return passes + ([("llc", subset)] if any(p.name == "llc" for p in chosen) else [])


def run_demo(data_dir: Path, retrain: bool = False, probes: str | None = None) -> int:
    toy_root, warehouse, figures = data_dir / "toy-suite", data_dir / "warehouse.duckdb", data_dir / "figures"
    have = all((toy_root / m.name / "suite.json").exists() for m in SUITE)
    if retrain or not have:
        click.echo(f"[1/4] training the toy suite into {toy_root} ...")
        train_suite(toy_root)
    else:
        click.echo(f"[1/4] toy suite already in {toy_root} (--retrain to train again)")
    click.echo(f"[2/4] ingesting into {warehouse} ...")
    failed = 0
    for m in SUITE:
        steps = sorted(int(p.name[4:]) for p in (toy_root / m.name).glob("step*"))
        for names, revisions in demo_plan(probes, steps):
            result = ingest(f"toy/{m.name}", warehouse=warehouse, toy_root=toy_root, probes=names, revisions=revisions)
            click.echo(f"  [{names}] " + result.summary().replace("\n", "\n  "))
            failed += len(result.failed)
    click.echo("[3/4] building the marts (dbt build) ...")
    build(warehouse)
    click.echo("[4/4] summary, figures and report")
    click.echo(format_frame(summary_frame(warehouse)))
    paths = write_figures(warehouse, figures)
    report = write_report(warehouse, [f"toy/{m.name}" for m in SUITE], data_dir / "report" / "report.html")
    click.echo(f"\nwarehouse: {warehouse.resolve()} (serving snapshot for readers: {serving_path(warehouse).name})")
    click.echo(f"figures:   {figures.resolve()}/ ({', '.join(p.name for p in paths)})")
    click.echo(f"report:    {report.html.resolve()} ({len(report.sections)} sections, {len(report.figures)} figures)")
    click.echo(f'try:       tdw sql "select * from marts.fct_bifurcation" --warehouse {warehouse}')
    return 1 if failed else 0
