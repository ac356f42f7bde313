"""The time-demeaned MSD per model, tensor and checkpoint: eqs. 4-5 on w_t,k minus index k's
mean over every ingested checkpoint (a check on the seed's Figure 3, never a finding). Each new
checkpoint moves that mean, so a model whose weights series changed is recomputed whole
(analysis.msd.time_demeaned_msd); the others are left alone."""


def model(dbt, session):
    from analysis.msd import time_demeaned_msd

    dbt.config(
        materialized="incremental",
        unique_key=["model_id", "tensor_name", "step"],
        on_schema_change="sync_all_columns",
    )
    this = str(dbt.this) if dbt.is_incremental else None
    return time_demeaned_msd(session, dbt.ref("stg_weight_sample"), dbt.ref("int_checkpoint_versions"), this)
