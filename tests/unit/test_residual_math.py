"""Residual-stream math on constructed streams with known answers (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ingest.probes.residual import pca
from ingest.probes.residual.attractor import moved_states, pair_convergence, plane_grid
from ingest.probes.residual.metrics import (
    StreamStats,
    gaussian_mi,
    layer_permutations,
    random_rotation,
    rotation_counts,
    wrap_angle,
)


def stats_of(h: np.ndarray, batches: int = 1, rms_fraction: float = 0.5, seed: int = 0):
    n, P, d = h.shape
    s = StreamStats(P, d, random_rotation(d, seed), layer_permutations(P, 2, seed), rms_fraction)
    for part in np.array_split(h, batches):
        s.update(torch.as_tensor(part, dtype=torch.float32))
    return s.finalize()


def test_constant_velocity_stream():
    """h_l = h_0 + l v: velocity |v| everywhere, no acceleration, velocities aligned."""
    rng = np.random.default_rng(0)
    n, P, d = 50, 6, 8
    h0 = rng.normal(size=(n, 1, d))
    v = rng.normal(size=(n, 1, d))
    h = h0 + np.arange(P)[None, :, None] * v
    fin = stats_of(h)
    speed = np.linalg.norm(v[:, 0], axis=-1)
    np.testing.assert_allclose(fin.points["velocity"][:-1], speed.mean(), rtol=1e-5)
    np.testing.assert_allclose(fin.points["velocity_median"][:-1], np.median(speed), rtol=1e-5)
    np.testing.assert_allclose(fin.points["acceleration"][:-2], 0, atol=1e-5)
    np.testing.assert_allclose(fin.points["cos_velocity"][:-2], 1, atol=1e-6)
    assert np.isnan(fin.points["velocity"][-1]) and np.isnan(fin.points["acceleration"][-2:]).all()


def test_known_continuity_and_mutual_information():
    """Unit u of point l+1 = rho_u * unit u of point l + orthogonal noise: r = rho_u exactly."""
    rng = np.random.default_rng(1)
    n, d = 400, 5
    rho = np.array([0.0, 0.3, 0.6, 0.9, -0.5])
    x = rng.normal(size=(n, d))
    z = rng.normal(size=(n, d))
    x -= x.mean(0)
    z -= z.mean(0)
    z -= x * (x * z).sum(0) / (x * x).sum(0)  # exactly uncorrelated with x
    x /= np.linalg.norm(x, axis=0)
    z /= np.linalg.norm(z, axis=0)
    y = rho * x + np.sqrt(1 - rho**2) * z
    h = np.stack([x, y, 3 * y + 2], axis=1) * 10  # [n, 3, d]; point 2 = affine of 1
    fin = stats_of(h, batches=7)  # streamed over uneven batches
    np.testing.assert_allclose(fin.unit_continuity[0], rho, atol=1e-5)
    np.testing.assert_allclose(fin.unit_continuity[1], 1, atol=1e-6)
    np.testing.assert_allclose(fin.points["continuity"][0], rho.mean(), atol=1e-5)
    np.testing.assert_allclose(fin.unit_mi[0], -0.5 * np.log(1 - rho**2), atol=1e-4)
    assert fin.points["mutual_info"][0] == pytest.approx(np.mean(-0.5 * np.log(1 - rho**2)), abs=1e-4)
    assert gaussian_mi(np.array([0.0]))[0] == 0.0


def test_streaming_equals_one_batch_and_rotation_control_differs():
    rng = np.random.default_rng(2)
    h = rng.normal(size=(90, 4, 6)).cumsum(axis=1) + 100.0  # large offset: shifted sums matter
    one, many = stats_of(h, 1), stats_of(h, 9)
    for k in one.points:
        np.testing.assert_allclose(one.points[k], many.points[k], rtol=1e-6, atol=1e-9, err_msg=k)
    np.testing.assert_allclose(one.unit_continuity, many.unit_continuity, atol=1e-6)
    ref = np.array([[np.corrcoef(h[:, l, u], h[:, l + 1, u])[0, 1] for u in range(6)] for l in range(3)])
    np.testing.assert_allclose(one.unit_continuity, ref, atol=1e-6)
    Q = random_rotation(6, 0).double().numpy()
    np.testing.assert_allclose(Q @ Q.T, np.eye(6), atol=1e-6)
    hr = h @ Q
    ref_r = np.array([[np.corrcoef(hr[:, l, u], hr[:, l + 1, u])[0, 1] for u in range(6)] for l in range(3)])
    np.testing.assert_allclose(one.unit_continuity_rotated, ref_r, atol=1e-5)


def test_density_dense_versus_sparse():
    d = 16
    dense = np.ones((3, 2, d))
    sparse = np.zeros((3, 2, d))
    sparse[:, :, 0] = 5.0
    f_dense, f_sparse = stats_of(dense), stats_of(sparse)
    np.testing.assert_allclose(f_dense.points["participation_ratio"], 1.0)
    np.testing.assert_allclose(f_sparse.points["participation_ratio"], 1 / d)
    np.testing.assert_allclose(f_dense.points["frac_above_rms"], 1.0)
    np.testing.assert_allclose(f_sparse.points["frac_above_rms"], 1 / d)
    np.testing.assert_allclose(f_dense.points["norm_growth"][0], 1.0)


def test_wrap_angle_half_open_interval():
    t = torch.tensor([math.pi, -math.pi, 3 * math.pi, 0.5, -0.5, 2 * math.pi + 0.1])
    np.testing.assert_allclose(wrap_angle(t).numpy(), [math.pi, math.pi, math.pi, 0.5, -0.5, 0.1], atol=1e-6)


def test_rotation_count_of_an_oscillating_unit():
    """a_l = sin(w l) over K periods: the portrait (a, grad a) circles K times clockwise."""
    K, per = 3, 16
    l = np.arange(K * per + 1)
    a = np.sin(2 * np.pi * l / per)
    r = rotation_counts(torch.as_tensor(a[None, :, None], dtype=torch.float64))[0, 0].item()
    assert r == pytest.approx(-K, abs=0.5)
    x, y = a - a[0], np.gradient(a) - np.gradient(a)[0]
    theta = np.arctan2(np.diff(y), np.diff(x))
    assert r == pytest.approx(np.angle(np.exp(1j * np.diff(theta))).sum() / (2 * np.pi), abs=1e-9)
    line = rotation_counts(torch.arange(10, dtype=torch.float64)[None, :, None] * 2.0)
    assert line.item() == 0.0  # a straight line never turns


def test_pca_matches_numpy_svd_and_shared_basis_variance():
    rng = np.random.default_rng(3)
    states = rng.normal(size=(30, 5, 7)) * np.arange(1, 8)  # [inputs, points, d]
    b = pca.fit(states)
    X = states.reshape(-1, 7)
    _, s, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(b.components), np.abs(vt[:3]), atol=1e-10)
    np.testing.assert_allclose(b.explained_ratio, s[:3] ** 2 / (s**2).sum())
    assert (b.components[np.arange(3), np.abs(b.components).argmax(1)] > 0).all()
    coords, mean = pca.trajectories(states, b)
    np.testing.assert_allclose(mean, (states.mean(0) - X.mean(0)) @ b.components.T, atol=1e-10)
    var, ratio = b.variance_on(states)  # a basis on its own data
    np.testing.assert_allclose(var, b.explained_variance)
    np.testing.assert_allclose(ratio, b.explained_ratio)


def test_moved_states_land_on_the_grid_and_keep_the_rest():
    rng = np.random.default_rng(4)
    states = rng.normal(size=(10, 3, 6))
    b = pca.fit(states)
    grid = plane_grid(b.project(states[:, 1])[:, :2], 3)
    assert grid.shape == (9, 2)
    moved = moved_states(states[:, 1], b, grid)  # [inputs, grid, d]
    np.testing.assert_allclose(b.project(moved)[..., :2], np.broadcast_to(grid, (10, 9, 2)), atol=1e-10)
    np.testing.assert_allclose(b.project(moved)[..., 2], np.repeat(b.project(states[:, 1])[:, 2:3], 9, 1), atol=1e-10)


def test_pair_convergence_of_contracting_stream():
    """Trajectories that shrink toward a common point by 1/2 per layer: ratio 1/2."""
    rng = np.random.default_rng(5)
    start = rng.normal(size=(6, 4))
    target = rng.normal(size=4) * 10
    h = np.stack([target + (start - target) * 0.5**l for l in range(5)], axis=1)
    conv = pair_convergence(h, np.array([[0, 1], [2, 3], [1, 5]]))
    np.testing.assert_allclose(conv["ratio"][:-1], 0.5)
    np.testing.assert_allclose(conv["frac_contracting"][:-1], 1.0)
    assert np.isnan(conv["ratio"][-1]) and conv["n_pairs"] == 3


def test_sample_points_and_perturbation_layers_from_config():
    from ingest.errors import TdwError
    from ingest.probes.residual.probe import perturb_points
    from ingest.probes.residual.sites import layout_of

    neox = layout_of(
        {
            "model_type": "gpt_neox",
            "num_hidden_layers": 6,
            "hidden_size": 512,
            "vocab_size": 50304,
            "max_position_embeddings": 2048,
        }
    )
    assert neox.parallel and neox.n_points == 7 and neox.block_inputs() == [0, 1, 2, 3, 4, 5]
    gpt2 = layout_of({"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "vocab_size": 256, "n_positions": 16})
    assert [p.site for p in gpt2.points] == ["block_in", "pre_mlp", "block_in", "pre_mlp", "final"]
    assert [p.block for p in gpt2.points] == [0, 0, 1, 1, 2] and gpt2.context == 16
    assert perturb_points("auto", gpt2) == [0, 2]
    assert perturb_points("none", gpt2) == [] and perturb_points("2,0", gpt2) == [0, 2]
    with pytest.raises(TdwError, match="layer 5 does not exist"):
        perturb_points([5], gpt2)
    with pytest.raises(TdwError, match="final point"):
        perturb_points(6, neox)
    with pytest.raises(TdwError, match="unsupported architecture"):
        layout_of({"model_type": "t5"})
