"""`tdw check`: the warehouse's data-quality verdict in one place.

Runs every dbt test on the built marts (``dbt test``), then reads the manifest and
``marts.fct_data_quality`` (failed jobs with their recorded errors, non-finite inputs) and
prints a readable summary. The Great Expectations gate runs earlier, inside ingest, on
each job's frames before they are committed (``warehouse.quality``: a failing expectation
fails the job); its failures appear here as failed jobs, and the summary counts the failed
expectations (``failed_expectations`` of the mart) over the jobs whose latest attempt
failed the gate.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ingest.errors import TdwError
from warehouse import db
from warehouse.dbt import run_dbt

# flags that fail `tdw check`; all but failed_job only warn with --stale-as-warnings
FAILING_KINDS = ("failed_job", "identical_checkpoint", "stale_tensor", "discontinuity")


def failing(kind: str, stale_as_warnings: bool) -> bool:
    """Whether a flag of this kind fails `tdw check` (--stale-as-warnings downgrades all but
    failed jobs to warnings)."""
    return kind in FAILING_KINDS and not (stale_as_warnings and kind != "failed_job")


def check(warehouse: Path, stale_as_warnings: bool = False) -> tuple[bool, str]:
    """(passed, summary): passed is False when a dbt test fails, a job's latest attempt
    failed, or a checkpoint is stale or inconsistent: byte-identical to another step's, a
    tensor with the same values at non-adjacent steps, a tensor whose norm jumps against
    both neighbours (unless ``stale_as_warnings``, which reports those without failing)."""
    lines, ok = [], True
    try:
        run_dbt(Path(warehouse), "test")
        lines.append("dbt tests: all passed")
    except TdwError as e:
        ok = False
        lines.append(f"dbt tests: FAILED — {e}")
    con = db.connect(Path(warehouse), read_only=True)
    try:
        jobs = con.execute("select status, count(*) from raw.ingest_runs group by status order by status").fetchall()
        lines.append("ingest attempts: " + ", ".join(f"{n} {s}" for s, n in jobs))
        try:
            flagged = con.execute(
                "select kind, probe, count(*) as n, any_value(issue) from marts.fct_data_quality "
                "group by kind, probe order by kind, probe"
            ).fetchall()
            rows = con.execute(
                "select model_id, step, probe, kind, issue from marts.fct_data_quality "
                "order by model_id, step, probe limit 20"
            ).fetchall()
            gate = [
                json.loads(r[0])
                for r in con.execute(
                    "select failed_expectations from marts.fct_data_quality where failed_expectations is not null"
                ).fetchall()
            ]
        except Exception:  # noqa: BLE001 — marts not built yet
            raise TdwError("marts.fct_data_quality is missing: run `tdw build` first") from None
    finally:
        con.close()
    counts = Counter(e for failed in gate for e in failed)
    lines.append(
        f"quality gate: {len(gate)} jobs failed it"
        + (": " + "; ".join(f"{e} ({n})" for e, n in counts.most_common(5)) if gate else "")
    )
    if not flagged:
        lines.append("flagged checkpoints: none")
    for kind, probe, n, example in flagged:
        lines.append(f"flagged: {n} {kind} ({probe}), e.g. {example}")
        ok = ok and not failing(kind, stale_as_warnings)
    for model, step, probe, kind, issue in rows:
        lines.append(f"  {model} step{step} {probe}: {kind}: {issue}")
    return ok, "\n".join(lines)
