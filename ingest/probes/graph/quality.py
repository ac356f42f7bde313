"""Great Expectations suite for one graph job's raw frames, run before they are loaded.

Checks (pandas datasource, ephemeral context, as DESIGN.md prescribes for GX 1.x):
``graph_edges`` — one row per natural key; ``weight`` (1 - cos) finite and in [0, 2];
``rel_l2`` and ``kl`` finite and >= 0 (``kl`` NULL off the logits edges); ``dloss``
finite; ``n_prompts`` >= 1; every (src, dst) pair among the edges the architecture
allows (no forbidden edge). ``graph_prompts`` — one row per natural key and
0 <= measure_start < measure_end. A failure raises ``TdwError`` naming the expectations
that failed, so the job is recorded as failed and nothing is committed.
"""
from __future__ import annotations

import os

import pandas as pd

from ingest.errors import TdwError
from ingest.probes.graph.adapters import Adapter

BIG = 1e300      # an upper bound that excludes +inf ("finite")


def _suite(name: str, expectations: list) -> "object":
    import great_expectations as gx
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(e)
    return suite


def edge_expectations(ad: Adapter) -> list:
    import great_expectations.expectations as gxe
    allowed = [list(e) for e in ad.graph_edges()]
    key = ["model_id", "step", "task", "ablation", "src", "dst"]
    return [
        gxe.ExpectCompoundColumnsToBeUnique(column_list=key),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("weight", "rel_l2", "n_prompts")),
        gxe.ExpectColumnValuesToBeBetween(column="weight", min_value=0.0, max_value=2.0),
        gxe.ExpectColumnValuesToBeBetween(column="rel_l2", min_value=0.0, max_value=BIG),
        gxe.ExpectColumnValuesToBeBetween(column="kl", min_value=0.0, max_value=BIG),
        gxe.ExpectColumnValuesToBeBetween(column="dloss", min_value=-BIG, max_value=BIG),
        gxe.ExpectColumnValuesToBeBetween(column="n_prompts", min_value=1),
        gxe.ExpectColumnPairValuesToBeInSet(column_A="src", column_B="dst", value_pairs_set=allowed),
    ]


def prompt_expectations() -> list:
    import great_expectations.expectations as gxe
    return [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["model_id", "step", "task", "ablation", "prompt_index"]),
        gxe.ExpectColumnValuesToBeBetween(column="measure_start", min_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="measure_end", column_B="measure_start"),
    ]


def validate_frames(frames: dict[str, pd.DataFrame], ad: Adapter) -> None:
    """Run the suite on a job's frames; raise TdwError listing what failed."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.ERROR)

    from great_expectations.data_context.types.base import ProgressBarsConfig
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("graph_job")
    failed = []
    for table, expectations in (("graph_edges", edge_expectations(ad)),
                                ("graph_prompts", prompt_expectations())):
        frame = frames[table].drop(columns=["token_ids"], errors="ignore")
        frame = frame.astype({c: "float64" for c in frame.columns if str(frame[c].dtype) == "Float64"})
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("job") \
            .get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(_suite(table, expectations))
        for r in result.results:
            if not r.success:
                cfg = r.expectation_config
                col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or cfg.kwargs.get("column_A")
                failed.append(f"{table}: {cfg.type}({col})")
    if failed:
        raise TdwError("graph data-quality check failed: " + "; ".join(failed))
