"""The short summary `tdw demo` prints, one row per model: its checkpoints; the induction
transition (the capability signal every other claim is lined up with: the step where the
held-out ``R R`` loss is half-way down, the ingested checkpoints bracketing it, and whether
it completed before the last checkpoint); the component graph's phase boundaries and
size; how many residual-stream points the probe samples; and how many tensors show an MSD
peak (Nicolini's bifurcation; "no peak: still rising" everywhere in the toy suite, so the
count says it plainly rather than a step that is really the last checkpoint). It reads the marts
only (the serving snapshot holds nothing else)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from warehouse.sql import query

SUMMARY_SQL = """
with ckpt as (
    select model_id, count(*) as checkpoints, max(step) as last_step
    from marts.dim_checkpoint group by model_id
),
cap as (
    select model_id, capability_step as induction_step,
           capability_prev_step || '..' || capability_next_step as induction_between,
           capability_status as induction_status
    from marts.fct_phase_alignment
),
loss as (
    select model_id, round(arg_min(loss, step), 2) || ' -> ' || round(arg_max(loss, step), 2) as induction_loss
    from marts.fct_capability where task = 'induction' group by model_id
),
phases as (
    select model_id, string_agg(start_step::varchar, ', ' order by start_step) as graph_phase_starts
    from marts.fct_phases where signal = 'graph_induction_zero' and phase_index > 1 group by model_id
),
edges as (
    select model_id, count(*) as graph_edges
    from marts.fct_graph_edges
    where task = 'induction' and ablation = 'zero'
      and step = (select max(step) from marts.fct_graph_edges g where g.model_id = fct_graph_edges.model_id)
    group by model_id
),
points as (
    select model_id, count(distinct layer) as residual_points from marts.fct_residual_dynamics group by model_id
),
msd as (
    select model_id,
           count(*) filter (where peak_status = 'peak') || ' of ' || count(*) as msd_peaks
    from marts.fct_bifurcation group by model_id
)
select c.model_id, c.checkpoints, c.last_step, cap.induction_step, cap.induction_between, cap.induction_status,
       l.induction_loss, p.graph_phase_starts, e.graph_edges, r.residual_points, m.msd_peaks
from ckpt c
left join cap using (model_id)
left join loss l using (model_id)
left join phases p using (model_id)
left join edges e using (model_id)
left join points r using (model_id)
left join msd m using (model_id)
order by c.model_id
"""


def summary_frame(warehouse: Path) -> pd.DataFrame:
    return query(warehouse, SUMMARY_SQL)
