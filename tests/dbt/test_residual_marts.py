"""The residual marts on the toy-suite warehouse (``built_warehouse``: every probe, dbt build).

Cross-checks each mart against the raw tables it derives from, recomputes the emergence
rules in pandas, and recomputes one checkpoint's numbers from the warehouse alone (the
stored prompt token ids, fed through the stored checkpoint with plain PyTorch hooks).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from ingest.sources import open_source

CONTRACT = ["model_id", "step", "layer", "continuity", "velocity", "acceleration", "density"]


@pytest.fixture(scope="module")
def con(built_warehouse):
    c = duckdb.connect(str(built_warehouse), read_only=True)
    yield c
    c.close()


def df(con, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


def test_dynamics_contract_and_grain(con):
    d = df(con, "select * from marts.fct_residual_dynamics")
    assert list(d.columns[: len(CONTRACT)]) == CONTRACT
    assert not d.duplicated(["model_id", "step", "layer"]).any()
    points = d.groupby("model_id")["layer"].max().to_dict()
    assert points == {"toy/neox-2l": 2, "toy/neox-3l": 3}  # parallel residual: L + 1 points
    steps = df(con, "select model_id, count(distinct step) n from raw.residual_points group by 1")
    assert (steps["n"] > 3).all()
    last = d[d["layer"] == d["model_id"].map(points)]
    assert last["continuity"].isna().all() and last["density"].notna().all()


def test_dynamics_continuity_is_the_mean_of_unit_continuity(con):
    got = df(
        con,
        """
        select d.model_id, d.step, d.layer, d.continuity, d.continuity_rotated, avg(u.continuity) as ref,
               avg(u.continuity_rotated) as ref_rot
        from marts.fct_residual_dynamics d
        join raw.residual_unit_continuity u using (model_id, step, layer)
        group by all""",
    )
    assert len(got) > 0
    np.testing.assert_allclose(got["continuity"], got["ref"], atol=1e-9)
    np.testing.assert_allclose(got["continuity_rotated"], got["ref_rot"], atol=1e-9)


def test_numbers_recompute_from_the_warehouse_alone(con, toy_suite):
    """Stored prompts through the stored checkpoint, plain hooks: the mart's velocity and density."""
    model_id = "toy/neox-2l"
    step = int(df(con, f"select max(step) s from marts.fct_residual_dynamics where model_id = '{model_id}'")["s"][0])
    prompts = df(
        con,
        f"select token_ids from raw.residual_prompts where model_id = '{model_id}' "
        f"and step = {step} order by prompt_index",
    )["token_ids"]
    ids = torch.as_tensor(np.stack(prompts.to_list()), dtype=torch.long)
    model = open_source(model_id, toy_root=toy_suite).checkpoint(step).load_model()
    acts = []
    base = model.base_model
    hooks = [
        m.register_forward_hook(lambda _m, _a, out: acts.append(out.detach())) for m in (base.emb_dropout, *base.layers)
    ]
    with torch.no_grad():
        base(ids)
    for h in hooks:
        h.remove()
    h = torch.stack(acts, dim=1)[:, :, -1].double().numpy()  # [prompts, points, d]
    d = df(
        con, f"select * from marts.fct_residual_dynamics where model_id = '{model_id}' and step = {step} order by layer"
    )
    v = np.linalg.norm(np.diff(h, axis=1), axis=-1).mean(0)
    np.testing.assert_allclose(d["velocity"].to_numpy()[:-1], v, rtol=1e-4)
    pr = (np.abs(h).sum(-1) ** 2 / (h.shape[-1] * (h**2).sum(-1))).mean(0)
    np.testing.assert_allclose(d["density"].to_numpy(), pr, rtol=1e-4)


def test_trajectory_mean_and_shared_basis(con):
    t = df(con, "select * from marts.fct_residual_trajectory")
    assert not t.duplicated(["model_id", "step", "basis", "prompt_index", "layer"]).any()
    prompts = t[~t["is_mean"]].groupby(["model_id", "step", "basis", "layer"])[["pc1", "pc2", "pc3"]].mean()
    means = t[t["is_mean"]].set_index(["model_id", "step", "basis", "layer"])[["pc1", "pc2", "pc3"]]
    np.testing.assert_allclose(means.loc[prompts.index].to_numpy(), prompts.to_numpy(), atol=1e-9)
    for _model_id, g in t.groupby("model_id"):
        last = g["step"].max()
        assert (g.loc[g["basis"] == "shared", "basis_step"] == last).all()
        fin = g[g["step"] == last].pivot_table(index=["prompt_index", "layer"], columns="basis", values="pc1")
        np.testing.assert_allclose(fin["own"], fin["shared"], atol=1e-6)  # same basis at the end


def test_convergence_grid_and_return_ratio(con):
    c = df(con, "select * from marts.fct_residual_convergence")
    assert (c["n_grid"] == 9).all()  # default 3 x 3 grid
    assert set(c["perturb_layer"]) == {0, 1}  # 'auto': the first two blocks
    at_edit = c[c["layers_after"] == 0]
    np.testing.assert_allclose(at_edit["return_ratio"], 1.0, atol=1e-9)
    raw = df(
        con,
        """select model_id, step, perturb_layer, layer, avg(distance_mean) d
                     from raw.residual_attractor group by all""",
    )
    m = c.merge(raw, on=["model_id", "step", "perturb_layer", "layer"])
    np.testing.assert_allclose(m["distance"], m["d"], rtol=1e-9)


def _holding_from(steps: np.ndarray, holds: np.ndarray):
    """First step from which ``holds`` is true at every later step (None: false at the last)."""
    fails = np.flatnonzero(~holds)
    first = 0 if len(fails) == 0 else fails[-1] + 1
    return steps[first] if first < len(steps) else None


def emergence_reference(s: pd.DataFrame, ci: pd.DataFrame) -> dict:
    """The rules in pandas: threshold and half-change describe the series; emergence needs the
    bootstrap interval beyond the threshold (ci: step, ci_low, ci_high) and the paper's direction."""
    s = s.sort_values("step")
    v, steps = s["value"].to_numpy(), s["step"].to_numpy()
    change = v[-1] - v[0]
    half = steps[np.argmax((v - v[0]) / change >= 0.5)] if change != 0 else None
    direction, thr = s["direction"].iloc[0], s["threshold"].iloc[0]
    if direction is None or pd.isna(direction):
        return {"half_change_step": half, "threshold_step": None, "emergence_step": None}
    holds = v < thr if direction == "below" else v > thr
    out = {"half_change_step": half, "threshold_step": _holding_from(steps, holds), "emergence_step": None}
    if len(ci) == len(s):
        c = ci.set_index("step").loc[steps]
        margin = (c["ci_high"] < thr) if direction == "below" else (c["ci_low"] > thr)
        paper_ok = change > 0 if direction == "above" else change < 0  # the paper's findings here
        out["emergence_step"] = _holding_from(steps, margin.to_numpy()) if paper_ok else None
    return out


def test_emergence_matches_pandas_rules(con):
    sig = df(con, "select * from marts.fct_residual_signals")
    ci = df(con, "select * from intermediate.int_residual_bootstrap")
    em = df(con, "select * from marts.fct_residual_emergence").set_index(["model_id", "signal"])
    assert {
        "lower_continuity",
        "lower_contraction",
        "attractor_return",
        "density_growth",
        "velocity_growth",
        "continuity_gap",
        "mutual_info",
    } <= set(sig["signal"])
    assert set(ci["signal"]) == {"density_growth", "velocity_growth"}
    for (model_id, signal), g in sig.groupby(["model_id", "signal"]):
        ref = emergence_reference(g, ci[(ci.model_id == model_id) & (ci.signal == signal)])
        row = em.loc[(model_id, signal)]
        for k, want in ref.items():
            got = row[k]
            assert (pd.isna(got) and want is None) or got == want, (model_id, signal, k)


def test_bootstrap_interval_holds_the_prompt_mean(con):
    """The interval over prompts brackets the signal computed from the per-prompt rows."""
    pp = df(con, "select * from raw.residual_prompt_points")
    ci = df(con, "select * from intermediate.int_residual_bootstrap").set_index(["model_id", "step", "signal"])
    for (model_id, step), g in list(pp.groupby(["model_id", "step"]))[:6]:
        last = g.layer.max()
        pr = g.pivot(index="prompt_index", columns="layer", values="participation_ratio")
        vel = g.pivot(index="prompt_index", columns="layer", values="velocity")
        dens = (pr[last] - pr[0]).mean()
        velg = vel[last - 1].mean() / vel[0].mean()
        for name, value in (("density_growth", dens), ("velocity_growth", velg)):
            row = ci.loc[(model_id, step, name)]
            assert row.ci_low <= value <= row.ci_high and row.n_prompts == len(pr)


def test_phase_signals_cover_training_without_overlap(con):
    ph = df(con, "select * from intermediate.int_residual_phases")
    assert list(ph.columns) == ["model_id", "signal", "phase", "start_step", "end_step"]
    assert ph["signal"].str.startswith("residual_").all()
    span = df(con, "select model_id, min(step) lo, max(step) hi from marts.fct_residual_signals group by 1").set_index(
        "model_id"
    )
    for (model_id, _), g in ph.groupby(["model_id", "signal"]):
        g = g.sort_values("start_step")
        assert g["start_step"].iloc[0] == span.loc[model_id, "lo"]
        assert g["end_step"].iloc[-1] == span.loc[model_id, "hi"]
        assert (g["start_step"].to_numpy()[1:] > g["end_step"].to_numpy()[:-1]).all()
        assert (g["start_step"] <= g["end_step"]).all()
