"""The mean square displacement of eqs. 4-5 per model, tensor and checkpoint, streamed:
each series' running sums are carried on its last row, so a new checkpoint costs one
sample (analysis.msd.streaming_msd). A (re-)ingest in the middle of a series restarts it
from its first checkpoint. A full refresh gives the same rows (to rounding)."""


def model(dbt, session):
    from analysis.msd import streaming_msd

    dbt.config(
        materialized="incremental",
        unique_key=["model_id", "tensor_name", "step"],
        on_schema_change="sync_all_columns",
    )
    this = str(dbt.this) if dbt.is_incremental else None
    return streaming_msd(session, dbt.ref("stg_weight_sample"), dbt.ref("int_checkpoint_versions"), this)
