"""The residual probe against direct numpy on activations captured with plain PyTorch hooks.

Two tiny seeded models saved as local checkpoints: a GPT-NeoX with a parallel residual
(sample points = layer boundaries) and a GPT-2 (sequential: before attention and before
the MLP of each block). The reference stream comes from forward hooks on the embedding
dropout and each block's output, plus (GPT-2) each attention's output added to its block
input; every metric is then recomputed with plain numpy loops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.errors import TdwError
from ingest.probes.residual import ResidualProbe
from ingest.probes.residual.metrics import layer_permutations, random_rotation
from ingest.sources import open_source

N_PROMPTS, LEN = 20, 12


def _neox(seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=256,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=0,
        )
    )


def _gpt2(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=16, bos_token_id=0, eos_token_id=0)
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    for name, build in (("neox", _neox), ("gpt2", _gpt2)):
        for step in (0, 8):
            build(step + 1).save_pretrained(root / name / f"step{step}")
    return {name: open_source(str(root / name)) for name in ("neox", "gpt2")}


def hook_stream(model, ids: torch.Tensor) -> np.ndarray:
    """[batch, pos, points, d] residual stream from plain forward hooks."""
    base = model.base_model
    acts: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_mod, _args, out):
            acts[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()

        return hook

    neox = model.config.model_type == "gpt_neox"
    blocks = base.layers if neox else base.h
    mods = [("emb", base.emb_dropout if neox else base.drop)]
    mods += [(f"block{i}", b) for i, b in enumerate(blocks)]
    if not neox:
        mods += [(f"attn{i}", b.attn) for i, b in enumerate(blocks)]
    handles = [m.register_forward_hook(keep(n)) for n, m in mods]
    try:
        with torch.no_grad():
            base(ids)
    finally:
        for h in handles:
            h.remove()
    points = []
    for i in range(len(blocks)):
        before = acts["emb"] if i == 0 else acts[f"block{i - 1}"]
        points.append(before)
        if not neox:
            points.append(before + acts[f"attn{i}"])
    points.append(acts[f"block{len(blocks) - 1}"])
    return torch.stack(points, dim=2).double().numpy()


_RUNS: dict = {}


def run_probe(source, step: int, **overrides):
    """(tables, params, context) of one probe run, shared by the tests that ask the same."""
    probe = ResidualProbe()
    params = probe.params(
        **{
            "n_prompts": N_PROMPTS,
            "prompt_len": LEN,
            "batch_size": 8,
            "grid": 2,
            "perturb_prompts": 3,
            "n_pairs": 1000,
            **overrides,
        }
    )
    key = (str(source.root), step, repr(sorted(params.items())))
    if key not in _RUNS:
        probe.validate(source.checkpoint(step), params)
        ctx = probe.context(source, source.steps(), params)
        _RUNS[key] = (probe.run(source.checkpoint(step), params, ctx), params, ctx)
    return _RUNS[key]


def reference_states(source, step: int, out) -> tuple[np.ndarray, object]:
    prompts = np.stack(out["residual_prompts"].sort_values("prompt_index")["token_ids"].to_list())
    model = source.checkpoint(step).load_model()
    return hook_stream(model, torch.as_tensor(prompts, dtype=torch.long)), model


def corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def rotation_count_ref(a: np.ndarray) -> float:
    """One unit, one sample: a [points]."""
    x, y = a - a[0], np.gradient(a) - np.gradient(a)[0]
    theta = np.arctan2(np.diff(y), np.diff(x))
    return float(np.angle(np.exp(1j * np.diff(theta))).sum() / (2 * np.pi))


def check_point_metrics(out, h: np.ndarray, params) -> None:
    """h [samples, points, d] reference states."""
    n, P, d = h.shape
    pts = out["residual_points"].sort_values("layer").reset_index(drop=True)
    assert list(pts["layer"]) == list(range(P))
    assert (pts["n_samples"] == n).all()
    v = np.linalg.norm(np.diff(h, axis=1), axis=-1)  # [n, P-1]
    a = np.linalg.norm(np.diff(h, n=2, axis=1), axis=-1)  # [n, P-2]
    l2 = np.linalg.norm(h, axis=-1)
    pr = np.abs(h).sum(-1) ** 2 / (d * l2**2)
    frac = (np.abs(h) > params["rms_fraction"] * (l2 / np.sqrt(d))[..., None]).mean(-1)
    Q = random_rotation(d, params["seed"]).double().numpy()
    hr = h @ Q
    cont = np.array([[corr(h[:, l, u], h[:, l + 1, u]) for u in range(d)] for l in range(P - 1)])
    cont_r = np.array([[corr(hr[:, l, u], hr[:, l + 1, u]) for u in range(d)] for l in range(P - 1)])
    pp = out["residual_prompt_points"].sort_values(["prompt_index", "layer"])
    if len(pp) == n * P:  # last-token samples: one per prompt, in prompt order
        np.testing.assert_allclose(pp["participation_ratio"].to_numpy().reshape(n, P), pr, rtol=1e-5)
        np.testing.assert_allclose(pp["velocity"].to_numpy().reshape(n, P)[:, :-1], v, rtol=1e-5)
        assert np.isnan(pp["velocity"].to_numpy(dtype=float).reshape(n, P)[:, -1]).all()
    for l in range(P):
        row = pts.loc[l]
        assert row["participation_ratio"] == pytest.approx(pr[:, l].mean(), rel=1e-5)
        assert row["participation_ratio_median"] == pytest.approx(np.median(pr[:, l]), rel=1e-5)
        assert row["frac_above_rms"] == pytest.approx(frac[:, l].mean(), abs=1e-9)
        assert row["norm"] == pytest.approx(l2[:, l].mean(), rel=1e-5)
        if l < P - 1:
            hl, hn = h[:, l], h[:, l + 1]
            assert row["velocity"] == pytest.approx(v[:, l].mean(), rel=1e-4)
            assert row["velocity_median"] == pytest.approx(np.median(v[:, l]), rel=1e-4)
            assert row["velocity_q75"] == pytest.approx(np.quantile(v[:, l], 0.75), rel=1e-4)
            cs = (hl * hn).sum(-1) / (np.linalg.norm(hl, axis=-1) * np.linalg.norm(hn, axis=-1))
            assert row["cos_state"] == pytest.approx(cs.mean(), abs=1e-5)
            assert row["norm_growth"] == pytest.approx((l2[:, l + 1] / l2[:, l]).mean(), rel=1e-5)
            assert row["continuity"] == pytest.approx(cont[l].mean(), abs=1e-6)
            assert row["continuity_median"] == pytest.approx(np.median(cont[l]), abs=1e-6)
            assert row["continuity_q05"] == pytest.approx(np.quantile(cont[l], 0.05), abs=1e-6)
            assert row["continuity_rotated"] == pytest.approx(cont_r[l].mean(), abs=1e-5)
            mi = -0.5 * np.log(1 - cont[l] ** 2)
            assert row["mutual_info"] == pytest.approx(mi.mean(), rel=1e-4)
        else:
            assert np.isnan(row["velocity"]) and np.isnan(row["continuity"])
        if l < P - 2:
            vl, vn = np.diff(h, axis=1)[:, l], np.diff(h, axis=1)[:, l + 1]
            cv = (vl * vn).sum(-1) / (np.linalg.norm(vl, axis=-1) * np.linalg.norm(vn, axis=-1))
            assert row["acceleration"] == pytest.approx(a[:, l].mean(), rel=1e-4)
            assert row["cos_velocity"] == pytest.approx(cv.mean(), abs=1e-5)
        else:
            assert np.isnan(row["acceleration"])
    units = out["residual_unit_continuity"].sort_values(["layer", "unit"])
    np.testing.assert_allclose(units["continuity"].to_numpy(), cont.ravel(), atol=1e-6)
    np.testing.assert_allclose(units["continuity_rotated"].to_numpy(), cont_r.ravel(), atol=1e-5)
    rot = out["residual_unit_rotations"].sort_values("unit")
    R = np.array([[rotation_count_ref(h[i, :, u]) for u in range(d)] for i in range(n)])
    np.testing.assert_allclose(rot["rotations"].to_numpy(), R.mean(0), atol=1e-5)
    np.testing.assert_allclose(rot["rotations_abs"].to_numpy(), np.abs(R).mean(0), atol=1e-5)
    perm = layer_permutations(P, params["n_permutations"], params["seed"]).numpy()[0]
    Rp = np.array([[rotation_count_ref(h[i, perm, u]) for u in range(d)] for i in range(n)])
    np.testing.assert_allclose(rot["rotations_perm"].to_numpy(), Rp.mean(0), atol=1e-5)


@pytest.mark.parametrize("arch,points", [("neox", 4), ("gpt2", 5)])
def test_point_metrics_match_numpy_on_hooked_stream(sources, arch, points):
    out, params, _ = run_probe(sources[arch], 8)
    ref, _ = reference_states(sources[arch], 8, out)  # [n, pos, P, d]
    assert ref.shape[2] == points
    check_point_metrics(out, ref[:, -1], params)  # the last token of each prompt


def test_all_positions_mode_streams_over_batches(sources):
    out, params, _ = run_probe(sources["gpt2"], 0, positions="all", batch_size=6)
    ref, _ = reference_states(sources["gpt2"], 0, out)
    n, T, P, d = ref.shape
    check_point_metrics(out, ref.reshape(n * T, P, d), params)


def test_pca_trajectories_match_numpy_svd(sources):
    out, params, ctx = run_probe(sources["neox"], 0)
    ref, _ = reference_states(sources["neox"], 0, out)
    h = ref[:, -1]  # [n, P, d]
    n, P, d = h.shape
    X = h.reshape(-1, d)
    mu = X.mean(0)
    _, s, vt = np.linalg.svd(X - mu, full_matrices=False)
    coords = (h - mu) @ vt[:3].T  # [n, P, 3]
    traj = out["residual_trajectory"]
    own = traj[traj["basis"] == "own"].sort_values(["prompt_index", "layer"])
    got = own[["pc1", "pc2", "pc3"]].to_numpy().reshape(n + 1, P, 3)
    signs = np.sign((got[1:] * coords).sum((0, 1)))  # SVD signs are arbitrary
    np.testing.assert_allclose(got[1:], coords * signs, atol=1e-5)
    np.testing.assert_allclose(got[0], (coords * signs).mean(0), atol=1e-5)
    pcs = out["residual_pca"]
    ratio = pcs[pcs["basis"] == "own"].sort_values("component")["explained_ratio"].to_numpy()
    np.testing.assert_allclose(ratio, s[:3] ** 2 / (s**2).sum(), rtol=1e-6)
    # the shared basis is the final checkpoint's PCA: step 8's own coordinates
    out8, _, _ = run_probe(sources["neox"], 8)
    assert ctx["basis_step"] == 8
    t8 = out8["residual_trajectory"]
    np.testing.assert_allclose(
        t8[t8["basis"] == "own"].sort_values(["prompt_index", "layer"])[["pc1", "pc2"]].to_numpy(),
        t8[t8["basis"] == "shared"].sort_values(["prompt_index", "layer"])[["pc1", "pc2"]].to_numpy(),
        atol=1e-5,
    )
    basis = ctx["shared_basis"]
    shared = traj[traj["basis"] == "shared"].sort_values(["prompt_index", "layer"])
    np.testing.assert_allclose(
        shared[["pc1", "pc2", "pc3"]].to_numpy()[P:], ((h - basis.mean) @ basis.components.T).reshape(-1, 3), atol=1e-5
    )


def test_pair_convergence_matches_numpy(sources):
    out, _, _ = run_probe(sources["gpt2"], 8)
    ref, _ = reference_states(sources["gpt2"], 8, out)
    h = ref[:, -1]
    n, P, _ = h.shape
    i, j = np.triu_indices(n, k=1)
    D = np.linalg.norm(h[i] - h[j], axis=-1)  # [pairs, P]
    conv = out["residual_convergence"].sort_values("layer")
    assert (conv["n_pairs"] == n * (n - 1) // 2).all()
    np.testing.assert_allclose(conv["distance_mean"], D.mean(0), rtol=1e-5)
    assert (D[:, 0] == 0).any()  # same last token: same embedding, no ratio
    for l in range(P - 1):
        ok = D[:, l] > 0
        ratio = D[ok, l + 1] / D[ok, l]
        assert conv["ratio_mean"].iloc[l] == pytest.approx(ratio.mean(), rel=1e-5)
        assert conv["ratio_median"].iloc[l] == pytest.approx(np.median(ratio), rel=1e-5)
        assert conv["frac_contracting"].iloc[l] == pytest.approx((ratio < 1).mean())


def check_attractor(out, model, arch: str, at: int, h: np.ndarray, prompts: list) -> None:
    """Perturbation rows at point ``at`` vs full forwards with a pre-hook editing the state.

    h [n, P, d]: the unperturbed last-token states of ``prompts`` (lists of token ids).
    """
    chosen = np.flatnonzero(out["residual_prompts"].sort_values("prompt_index")["perturbed"])
    att = out["residual_attractor"]
    att = att[att["perturb_layer"] == at]
    assert att["layer"].min() == at
    X = h.reshape(-1, h.shape[-1])
    mu = X.mean(0)
    vt = np.linalg.svd(X - mu, full_matrices=False)[2][:2]
    comp = vt * np.sign(vt[np.arange(2), np.abs(vt).argmax(1)])[:, None]  # the probe's signs
    blocks = model.base_model.layers if arch == "neox" else model.base_model.h
    block = blocks[at if arch == "neox" else at // 2]
    for _, rows in att.groupby("grid_index"):
        target = rows[["grid_pc1", "grid_pc2"]].to_numpy()[0]
        dists = []
        for i in chosen:
            new = h[i, at] + (target - (h[i, at] - mu) @ comp.T) @ comp

            def pre(_mod, args, kwargs, new=new):
                x = args[0].clone()
                x[0, -1] = torch.as_tensor(new, dtype=x.dtype)
                return (x,) + args[1:], kwargs

            handle = block.register_forward_pre_hook(pre, with_kwargs=True)
            try:
                pert = hook_stream(model, torch.tensor([list(prompts[i])]))[0, -1]  # [P, d]
            finally:
                handle.remove()
            if arch == "gpt2":  # pre-MLP = block input + attention output
                pert[at + 1] += new - pert[at]
            pert[at] = new  # the hooks see the unedited block input
            dists.append(np.linalg.norm(pert - h[i], axis=-1))
        D = np.array(dists)[:, at:]  # [prompts, later points]
        rows = rows.sort_values("layer")
        np.testing.assert_allclose(rows["distance_mean"], D.mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(rows["return_ratio_mean"], (D / D[:, :1]).mean(0), rtol=1e-4)
        assert rows["return_ratio_mean"].iloc[0] == pytest.approx(1.0)


@pytest.mark.parametrize("arch,at,auto", [("neox", 0, {0, 1}), ("neox", 1, {0, 1}), ("gpt2", 2, {0, 2})])
def test_attractor_matches_hooked_perturbation(sources, arch, at, auto):
    out, params, _ = run_probe(sources[arch], 8)  # perturb_layers 'auto'
    ref, model = reference_states(sources[arch], 8, out)
    assert out["residual_prompts"]["perturbed"].sum() == params["perturb_prompts"]
    att = out["residual_attractor"]
    assert set(att["perturb_layer"]) == auto
    assert att["grid_index"].nunique() == params["grid"] ** 2
    check_attractor(out, model, arch, at, ref[:, -1], out["residual_prompts"]["token_ids"].to_list())


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"prompt_len": 17}, "more than the model's context of 16"),
        ({"n_prompts": 0}, "empty"),
        ({"perturb_layers": [9]}, "layer 9 does not exist"),
        ({"perturb_layers": "1"}, "pre_mlp point"),
        ({"positions": "every"}, "positions"),
    ],
)
def test_bad_input_fails_before_any_work(sources, overrides, message):
    probe = ResidualProbe()
    with pytest.raises(TdwError, match=message):
        probe.validate(sources["gpt2"].checkpoint(0), probe.params(**overrides))


def test_bad_prompt_files(sources, tmp_path):
    probe = ResidualProbe()
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    long = tmp_path / "long.npy"
    np.save(long, np.zeros((2, 40), dtype=np.int64))
    for path, message in ((empty, "is empty"), (long, "40 tokens, more than"), (tmp_path / "missing.txt", "not found")):
        with pytest.raises(TdwError, match=message):
            probe.validate(sources["neox"].checkpoint(0), probe.params(prompts=str(path)))


def test_user_token_file_prompts_of_different_lengths(sources, tmp_path):
    """Right-padded batches: each prompt's last real token matches an unpadded forward."""
    path = tmp_path / "p.json"
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4, 4], [9, 8, 7, 6, 5]]
    path.write_text(str(prompts))
    out, _, _ = run_probe(sources["neox"], 0, prompts=str(path), perturb_layers=[2], perturb_prompts=4, batch_size=4)
    model = sources["neox"].checkpoint(0).load_model()
    singles = np.stack([hook_stream(model, torch.tensor([p]))[0, -1] for p in prompts])
    check_attractor(out, model, "neox", 2, singles, prompts)  # caches grouped by length
    traj = out["residual_trajectory"]
    own = traj[(traj["basis"] == "own") & (traj["prompt_index"] >= 0)]
    assert list(out["residual_prompts"]["n_tokens"]) == [3, 7, 2, 5]
    # the own PCA of the padded batch equals the PCA of the unpadded states
    X = singles.reshape(-1, singles.shape[-1])
    _, s, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    pcs = out["residual_pca"]
    np.testing.assert_allclose(
        pcs[pcs["basis"] == "own"].sort_values("component")["explained_ratio"], s[:3] ** 2 / (s**2).sum(), rtol=1e-4
    )
    assert len(own) == len(prompts) * 4


def test_bad_parameters_through_ingest_change_nothing(sources, tmp_path):
    """The pipeline validates before any job: a bad rerun leaves the loaded rows as they were."""
    import duckdb

    from warehouse.pipeline import ingest

    wh = tmp_path / "w.duckdb"
    src = str(sources["neox"].root)
    ok = {"n_prompts": 6, "prompt_len": 8, "perturb_layers": "none"}
    assert ingest(src, probes="residual", warehouse=wh, progress=False, params={"residual": ok}).ok
    count = "select count(*) from raw.residual_points"
    with duckdb.connect(str(wh), read_only=True) as c:
        before = c.execute(count).fetchone()[0]
    assert before == 2 * 4  # two checkpoints x four points
    for bad, message in (
        ({"prompt_len": 40}, "more than the model's context"),
        ({"n_prompts": 0}, "must be between 1 and"),
        ({"perturb_layers": "7"}, "does not exist"),
    ):
        with pytest.raises(TdwError, match=message):
            ingest(src, probes="residual", warehouse=wh, progress=False, force=True, params={"residual": {**ok, **bad}})
    with duckdb.connect(str(wh), read_only=True) as c:
        assert c.execute(count).fetchone()[0] == before
