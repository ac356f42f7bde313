"""The short summary `tdw demo` prints: models, checkpoints, and each model's MSD peak —
or "no peak: still rising" where MSD has not fallen (msd_peak_step is then NULL)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from warehouse.sql import query

SUMMARY_SQL = """
with ckpt as (
    select model_id, count(*) as checkpoints, min(step) as first_step, max(step) as last_step
    from marts.dim_checkpoint group by model_id
)
select c.model_id, c.checkpoints, c.first_step, c.last_step,
       b.tensor_name, b.peak_status as msd_peak,
       case when b.peak_status = 'peak' then b.peak_step end as msd_peak_step, b.peak_msd, b.fall_ratio
from ckpt c left join marts.fct_bifurcation b using (model_id)
order by c.model_id, b.tensor_name
"""


def summary_frame(warehouse: Path) -> pd.DataFrame:
    return query(warehouse, SUMMARY_SQL)
