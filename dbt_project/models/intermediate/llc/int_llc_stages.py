"""LLC stages per model (signal 'llc'): critical points of the LLC curve over log-step, as
Hoogland et al. 2024 find developmental stages (analysis.llc_stages: a turn of the curve
counts when it exceeds 2 standard errors of the chains' mean). One series per model: the
data set and hyperparameter hash with the most checkpoints (LLC values compare only within
one), checkpoints with no estimate left out."""


def model(dbt, session):
    import pandas as pd

    from analysis.llc_stages import llc_stages

    dbt.config(materialized="table")
    llc = dbt.ref("fct_llc").df()
    llc = llc[llc["llc_mean"].notna()]
    cols = ["model_id", "signal", "phase", "phase_index", "start_step", "end_step", "n_checkpoints"]
    cols += ["boundary_step", "dataset", "params_hash", "method"]
    rows = []
    for model_id, m in llc.groupby("model_id", sort=True):
        sizes = m.groupby(["dataset", "params_hash"], dropna=False).size().reset_index(name="n")
        pick = sizes.sort_values(["n", "dataset"], ascending=[False, True]).iloc[0]
        s = m[(m["dataset"] == pick["dataset"]) & (m["params_hash"].fillna("") == (pick["params_hash"] or ""))]
        s = s.sort_values("step")
        se = s["llc_se"].fillna(0.0).tolist()
        for st in llc_stages(s["step"].tolist(), s["llc_mean"].tolist(), se):
            rows.append(
                {
                    "model_id": model_id,
                    "signal": "llc",
                    **st,
                    "dataset": pick["dataset"],
                    "params_hash": pick["params_hash"],
                    "method": "critical points of the LLC over log-step (turns > 2 standard errors)",
                }
            )
    out = pd.DataFrame(rows, columns=cols)
    text = {c: "str" for c in ("model_id", "signal", "phase", "dataset", "params_hash", "method")}
    ints = {c: "int64" for c in ("phase_index", "start_step", "end_step", "n_checkpoints")}
    return out.astype({**text, **ints, "boundary_step": "Int64"})
