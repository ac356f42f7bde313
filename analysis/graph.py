"""Graph analysis of the component causal graph (METHODS §A), as pure functions.

Inputs are edge lists (src, dst, weight) of one checkpoint's graph, weight = 1 - cos
(>= 0, larger = stronger causal influence). NetworKit computes the graph algorithms.

- ``centralities``: in-strength (sum of incoming weights: *gatherers*), out-strength
  (*spreaders*), closeness on **lengths 1 / weight** (NetworKit reads weights as lengths;
  a strong edge is a short one; edges of weight <= ``MIN_WEIGHT`` are left out of the
  length graph), betweenness (*gatekeepers*) on **lengths -log(w / w_max)** over the
  backbone of edges with w >= ``BACKBONE_FRACTION`` x w_max (lengths that add like the
  log of a product of weights, so two strong hops beat one weak direct edge; with 1 / w on
  a nearly complete DAG the direct edge is almost always shortest and every betweenness
  is 0), PageRank on the weights (damping
  0.85; NetworKit, the same values as networkx's), and Katz centrality on the weights,
  x = beta (I - alpha W^T)^-1 1 with alpha 0.1, beta 1, incoming direction (networkx's
  definition; solved directly because NetworKit 11's KatzCentrality normalises
  differently). Betweenness is NetworKit's unnormalised count divided by (n-1)(n-2)
  (networkx's normalisation for directed graphs); closeness is NetworKit's generalized
  variant on outgoing distances (Wasserman-Faust, defined for graphs that are not
  strongly connected, as every DAG is).
- ``weight_distribution``: histogram on a log10 grid, quantiles, Gini coefficient, and a
  tail fit: continuous power law and lognormal, both by maximum likelihood on the
  values >= x_min (x_min chosen by the Kolmogorov-Smirnov distance of the power law,
  Clauset, Shalizi and Newman 2009), compared by the log-likelihood ratio R = sum(l_pl -
  l_ln) with Vuong's normalised statistic and two-sided p-value (R > 0 favours the power
  law; p large: the sample cannot tell them apart).
- ``role_stability``: between consecutive checkpoints, Spearman's rank correlation of
  each centrality over the common nodes and the Jaccard overlap of the top-k spreaders
  (out-strength) and gatherers (in-strength).
- ``change_point_phases``: optimal partition of a (checkpoints x metrics) series, each
  metric z-scored, into at most ``max_phases`` segments of constant mean (exact dynamic
  programming, squared-error cost) with a BIC-like penalty per extra segment of
  ``penalty * n_metrics * log(T)``; segments are named exploration, consolidation,
  refinement in order (``phase_k`` beyond three).
- ``strongest_paths``: the k strongest embed -> logits paths, strength = product of edge
  weights (length -log w, exact k-best dynamic programming in NetworKit's topological
  order; the graph is a DAG). The direct embed -> logits edge is not a circuit and is
  left out. These are the candidate circuits the seed paper names as future work.
- ``strongest_paths_per_hop``: the same ranked by per-hop strength, the geometric mean of
  the edge weights (a product favours short paths: every extra hop multiplies by a weight
  < 1), so a 3-hop circuit of strong edges can outrank a 2-hop path through a weak one.
  Exact: k-best lengths per (node, number of hops) by dynamic programming over hops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats

MIN_WEIGHT = 1e-12
BACKBONE_FRACTION = 0.05
KATZ_ALPHA, KATZ_BETA, PAGERANK_DAMP = 0.1, 1.0, 0.85
PHASE_NAMES = ("exploration", "consolidation", "refinement")


def _factorize(src: Sequence[str], dst: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(nodes, src codes, dst codes); nodes in order of first appearance along (src[0],
    dst[0], src[1], dst[1], ...). One hashing pass over the names."""
    import pandas as pd

    if len(src) == 0:
        return [], np.zeros(0, np.int64), np.zeros(0, np.int64)
    names = np.column_stack([np.asarray(src, dtype=object), np.asarray(dst, dtype=object)]).ravel()
    codes, uniques = pd.factorize(names)
    return list(uniques), codes[0::2].astype(np.int64), codes[1::2].astype(np.int64)


def _nk_graph(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray):
    """A directed weighted NetworKit graph from edge arrays (built in C++, not edge by edge)."""
    import networkit as nk

    if u.size == 0:
        return nk.Graph(n, weighted=True, directed=True)
    return nk.GraphFromCoo(
        (np.asarray(w, dtype=np.float64), (u.astype(np.uint64), v.astype(np.uint64))), n, weighted=True, directed=True
    )


def centralities(src: Sequence[str], dst: Sequence[str], weight: Sequence[float]) -> dict[str, dict[str, float]]:
    """{node: {in_strength, out_strength, betweenness, closeness, pagerank, katz}}."""
    import networkit as nk

    nodes, u, v = _factorize(src, dst)
    n = len(nodes)
    w = np.asarray(weight, dtype=np.float64)
    g = _nk_graph(n, u, v, w)
    strong = w > MIN_WEIGHT
    lengths = _nk_graph(n, u[strong], v[strong], 1.0 / w[strong])
    w_max = w.max() if w.size else 0.0
    core = w >= max(BACKBONE_FRACTION * w_max, MIN_WEIGHT)  # the backbone
    log_lengths = _nk_graph(n, u[core], v[core], -np.log(w[core] / w_max) if w_max > 0 else w[core])
    btw = nk.centrality.Betweenness(log_lengths, normalized=False).run().scores()
    scale = 1.0 / ((n - 1) * (n - 2)) if n > 2 else 1.0
    clo = nk.centrality.Closeness(lengths, False, nk.centrality.ClosenessVariant.GENERALIZED).run().scores()
    pr = nk.centrality.PageRank(g, damp=PAGERANK_DAMP, tol=1e-12).run().scores()
    adj = np.zeros((n, n))  # [n, n] summed weights
    np.add.at(adj, (u, v), w)
    katz = np.linalg.solve(np.eye(n) - KATZ_ALPHA * adj.T, KATZ_BETA * np.ones(n))
    return {
        name: {
            "in_strength": g.weightedDegreeIn(i),
            "out_strength": g.weightedDegree(i),
            "betweenness": btw[i] * scale,
            "closeness": clo[i],
            "pagerank": pr[i],
            "katz": float(katz[i]),
        }
        for i, name in enumerate(nodes)
    }


# --- the edge-weight distribution ------------------------------------------------------------
def gini(x: Sequence[float]) -> float:
    """Gini coefficient of non-negative values (0: all equal; -> 1: one holds everything)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def powerlaw_alpha(tail: np.ndarray, xmin: float) -> float:
    return 1.0 + tail.size / np.log(tail / xmin).sum()


def _powerlaw_loglik(tail: np.ndarray, xmin: float, alpha: float) -> np.ndarray:
    return np.log((alpha - 1) / xmin) - alpha * np.log(tail / xmin)


def _lognormal_loglik(tail: np.ndarray, xmin: float, mu: float, sigma: float) -> np.ndarray:
    """Log density of a lognormal truncated to [xmin, inf)."""
    z = (np.log(tail) - mu) / sigma
    tail_mass = 0.5 * special.erfc((math.log(xmin) - mu) / (sigma * math.sqrt(2)))
    return -np.log(tail * sigma * math.sqrt(2 * math.pi)) - 0.5 * z**2 - np.log(max(tail_mass, 1e-300))


def fit_lognormal(tail: np.ndarray, xmin: float) -> tuple[float, float]:
    logs = np.log(tail)
    start = np.array([logs.mean(), math.log(max(logs.std(), 1e-3))])
    res = optimize.minimize(
        lambda p: -_lognormal_loglik(tail, xmin, p[0], math.exp(p[1])).sum(),
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    return float(res.x[0]), float(math.exp(res.x[1]))


def _ks_exact(tail: np.ndarray, xmin: float) -> float:
    """KS distance between a sorted tail and its fitted power law, over every rank."""
    a = powerlaw_alpha(tail, xmin)
    cdf = 1 - (tail / xmin) ** (1 - a)
    emp = np.arange(1, tail.size + 1) / tail.size
    return float(np.max(np.abs(emp - cdf)))


def _ks_bounds(logs: np.ndarray, starts: np.ndarray, alpha: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate tail ``x[start:]`` (size m; ``logs``: the sorted log x plus a constant)
    and its exponent: the KS distance found at ``points + 1`` ranks spread evenly over the tail, and how much
    it can miss. Between two
    evaluated ranks j1 < j2 the empirical CDF rises by (j2 - j1) / m and the model CDF does not
    fall, so no rank between them is farther apart than the endpoints' distance plus
    (j2 - j1) / m. With every rank evaluated (m - 1 <= points) the miss is 0."""
    m = logs.size - starts  # [C]
    found = np.empty(starts.size)
    t = np.arange(points + 1) / points  # [P+1]
    rows = max(1, 2**21 // (points + 1))
    for a in range(0, starts.size, rows):
        s, mm, al = starts[a : a + rows], m[a : a + rows], alpha[a : a + rows]
        j = np.rint(t[None, :] * (mm[:, None] - 1)).astype(np.int64)  # [c, P+1] ranks
        cdf = -np.expm1((1 - al[:, None]) * (logs[s[:, None] + j] - logs[s][:, None]))
        found[a : a + rows] = np.abs((j + 1) / mm[:, None] - cdf).max(axis=1)
    gap = np.where(m - 1 <= points, 0, -(-(m - 1) // points))  # largest rank step
    return found, gap / m


KS_POINTS, KS_REFINE, KS_SLACK = 16, 4, 1e-9


def choose_xmin(x: np.ndarray, min_tail: int = 10) -> float:
    """x_min minimising the KS distance between the tail and its fitted power law (the
    smallest such x_min on ties; candidates: every distinct value but the largest whose tail
    holds at least ``min_tail`` values).

    Exact, in O(E log E) in practice rather than the O(E^2) of scanning every tail: one sort;
    every candidate's exponent from suffix sums of log x; then branch and bound on the KS
    distance. Each candidate's distance is bounded from below and above by evaluating
    ``KS_POINTS`` ranks of its tail (O(1) per candidate, see ``_ks_bounds``); candidates whose
    lower bound exceeds the best upper bound are dropped; the survivors are re-evaluated with
    ``KS_REFINE`` times as many ranks until every rank is evaluated. Survivors are the
    candidates within the current resolution of the minimum, which shrink geometrically, so
    the passes cost O(C KS_POINTS) + O(C' KS_REFINE KS_POINTS) + ... with C' << C. The last
    survivors (within ``KS_SLACK`` of the minimum, so that rounding in the suffix sums cannot
    drop the answer) are scored exactly as the O(E^2) reference scores them, so the choice is
    the reference's to the last bit. The worst case (many candidates tied to within 1/m of
    the minimum on large tails) degrades towards O(E^2); ``benchmarks/bench_graph_scale.py``
    measures the growth on Pythia-shaped graphs."""
    xs = np.sort(x[x > 0])
    if xs.size == 0:
        return 0.0
    n = xs.size
    first = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])  # start of each distinct value
    cand = first[:-1]
    cand = cand[n - cand >= min_tail]
    if cand.size == 0:
        return float(xs[0])
    logs = np.log(xs) - math.log(xs[-1])  # <= 0, small near the top
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = sum(logs[i:])
    m = n - cand
    alpha = 1.0 + m / (suffix[cand] - m * logs[cand])
    alive, points = np.arange(cand.size), KS_POINTS
    while True:
        found, miss = _ks_bounds(logs, cand[alive], alpha[alive], points)
        found = np.where(np.isnan(found), np.inf, found)
        best = np.min(found + miss)
        if not np.isfinite(best):
            return float(xs[0])
        keep = found <= best + KS_SLACK
        alive = alive[keep]
        if not miss[keep].any():
            break
        points *= KS_REFINE
    d = np.array([_ks_exact(xs[c:], xs[c]) for c in cand[alive]])
    d = np.where(np.isnan(d), np.inf, d)
    return float(xs[cand[alive][int(np.argmin(d))]])


def tail_fit(x: Sequence[float], min_tail: int = 10, xmin: float | None = None) -> dict[str, float]:
    """Power law vs lognormal on the tail: x_min (given, or chosen by KS), alpha, mu, sigma,
    R, Vuong z and p."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    nan = float("nan")
    out = {
        "xmin": nan,
        "n_tail": 0,
        "tail_index": nan,
        "lognormal_mu": nan,
        "lognormal_sigma": nan,
        "loglik_ratio": nan,
        "vuong_z": nan,
        "vuong_p": nan,
    }
    if x.size < min_tail or np.unique(x).size < 3:
        return out
    xmin = choose_xmin(x, min_tail) if xmin is None else float(xmin)
    tail = x[x >= xmin]
    alpha = powerlaw_alpha(tail, xmin)
    mu, sigma = fit_lognormal(tail, xmin)
    diff = _powerlaw_loglik(tail, xmin, alpha) - _lognormal_loglik(tail, xmin, mu, sigma)
    r, sd = float(diff.sum()), float(diff.std())
    z = r / (sd * math.sqrt(tail.size)) if sd > 0 else 0.0
    out.update(
        xmin=xmin,
        n_tail=int(tail.size),
        tail_index=float(alpha),
        lognormal_mu=mu,
        lognormal_sigma=sigma,
        loglik_ratio=r,
        vuong_z=z,
        vuong_p=float(special.erfc(abs(z) / math.sqrt(2))),
    )
    return out


def weight_distribution(
    weight: Sequence[float], bins: int = 20, lo: float = 1e-6, hi: float = 2.0
) -> dict[str, object]:
    """Summary of one graph's edge weights: counts on a log10 grid [lo, hi] (values below
    lo go to the first bin), quantiles, Gini and the tail fit."""
    w = np.asarray(weight, dtype=np.float64)
    edges = np.logspace(math.log10(lo), math.log10(hi), bins + 1)
    counts, _ = np.histogram(np.clip(w, lo, hi), bins=edges)
    q = np.quantile(w, [0.05, 0.25, 0.5, 0.75, 0.95]) if w.size else [float("nan")] * 5
    return {
        "n_edges": int(w.size),
        "mean": float(w.mean()) if w.size else float("nan"),
        "max": float(w.max()) if w.size else float("nan"),
        "q05": float(q[0]),
        "q25": float(q[1]),
        "q50": float(q[2]),
        "q75": float(q[3]),
        "q95": float(q[4]),
        "gini": gini(w),
        "hist_edges": edges.tolist(),
        "hist_counts": counts.tolist(),
        **tail_fit(w),
    }


# --- roles over checkpoints -------------------------------------------------------------------
def jaccard_top(a: dict[str, float], b: dict[str, float], k: int) -> float:
    def top(d: dict[str, float]) -> set[str]:
        return set(sorted(d, key=lambda v: (-d[v], v))[:k])

    ta, tb = top(a), top(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else float("nan")


def role_stability(prev: dict[str, dict[str, float]], cur: dict[str, dict[str, float]], k: int = 5) -> dict[str, float]:
    """Spearman correlation of each centrality over the common nodes, and top-k Jaccard of
    spreaders (out-strength) and gatherers (in-strength). Inputs: {node: {measure: value}}."""
    common = sorted(set(prev) & set(cur))
    out: dict[str, float] = {"n_nodes": len(common)}
    measures = sorted(next(iter(cur.values())).keys()) if cur else []
    for m in measures:
        a = [prev[v][m] for v in common]
        b = [cur[v][m] for v in common]
        rho = stats.spearmanr(a, b).statistic if len(common) > 2 and np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")
        out[f"spearman_{m}"] = float(rho)
    out["jaccard_spreaders"] = jaccard_top(
        {v: prev[v]["out_strength"] for v in common}, {v: cur[v]["out_strength"] for v in common}, k
    )
    out["jaccard_gatherers"] = jaccard_top(
        {v: prev[v]["in_strength"] for v in common}, {v: cur[v]["in_strength"] for v in common}, k
    )
    return out


# --- phases -----------------------------------------------------------------------------------
def change_points(series: np.ndarray, max_segments: int = 3, penalty: float = 1.0, min_size: int = 2) -> list[int]:
    """Segment starts (0 first) of the optimal piecewise-constant fit of ``series`` [T, m]."""
    x = np.asarray(series, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    t, m = x.shape
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    c1 = np.vstack([np.zeros(m), np.cumsum(x, axis=0)])
    c2 = np.concatenate([[0.0], np.cumsum((x**2).sum(axis=1))])

    def cost(i: int, j: int) -> float:  # squared error of x[i:j] about its mean
        s = c1[j] - c1[i]
        return float(c2[j] - c2[i] - (s @ s) / (j - i))

    best: dict[tuple[int, int], tuple[float, list[int]]] = {}
    for j in range(min_size, t + 1):
        best[(1, j)] = (cost(0, j), [0])
    for k in range(2, max_segments + 1):
        for j in range(k * min_size, t + 1):
            cands = [
                (best[(k - 1, i)][0] + cost(i, j), best[(k - 1, i)][1] + [i])
                for i in range((k - 1) * min_size, j - min_size + 1)
                if (k - 1, i) in best
            ]
            if cands:
                best[(k, j)] = min(cands, key=lambda c: c[0])
    pen = penalty * m * math.log(max(t, 2))
    options = [(best[(k, t)][0] + pen * (k - 1), best[(k, t)][1]) for k in range(1, max_segments + 1) if (k, t) in best]
    return min(options, key=lambda o: o[0])[1] if options else [0]


def change_point_phases(
    steps: Sequence[int], series: np.ndarray, max_phases: int = 3, penalty: float = 1.0, min_size: int = 2
) -> list[dict[str, object]]:
    """Phases of a metric series over checkpoints (ascending steps)."""
    steps = list(steps)
    if not steps:
        return []
    starts = change_points(series, max_phases, penalty, min_size) if len(steps) >= 2 * min_size else [0]
    bounds = starts + [len(steps)]
    return [
        {
            "phase": PHASE_NAMES[i] if i < len(PHASE_NAMES) else f"phase_{i + 1}",
            "phase_index": i + 1,
            "start_step": int(steps[a]),
            "end_step": int(steps[b - 1]),
            "n_checkpoints": b - a,
        }
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]


# --- candidate circuits -----------------------------------------------------------------------
ENDS = ("embed", "logits")  # where a candidate circuit starts and ends


def _path_edges(src: Sequence[str], dst: Sequence[str], weight: Sequence[float], ends: tuple[str, str]):
    """(nodes, source index, target index, u, v, w) of the edges a path may use: weight above
    MIN_WEIGHT, the direct source -> target edge left out; None when an end is missing."""
    nodes, u, v = _factorize(src, dst)
    if ends[0] not in nodes or ends[1] not in nodes:
        return None
    s, t = nodes.index(ends[0]), nodes.index(ends[1])
    w = np.asarray(weight, dtype=np.float64)
    keep = (w > MIN_WEIGHT) & ~((u == s) & (v == t))
    return nodes, s, t, u[keep], v[keep], w[keep]


def strongest_paths(
    src: Sequence[str], dst: Sequence[str], weight: Sequence[float], k: int = 5, ends: tuple[str, str] = ENDS
) -> list[tuple[list[str], float]]:
    """The k strongest source -> target paths of a DAG, strength = product of weights,
    without the direct source -> target edge; [(nodes, strength)] strongest first.

    Exact k-best dynamic programming in topological order: each node keeps its k shortest
    lengths (sum of -log w) from the source with a back-pointer (predecessor, its rank), the
    candidates of a node being its in-edges x its predecessors' k lengths (vectorised per
    node): O(E k) with O(n k) state, rather than a path tuple per candidate."""
    import networkit as nk

    edges = _path_edges(src, dst, weight, ends)
    if edges is None:
        return []
    nodes, s, t, u, v, w = edges
    n = len(nodes)
    order = nk.graphtools.topologicalSort(_nk_graph(n, u, v, w))
    by_dst = np.argsort(v, kind="stable")  # in-edges of each node
    ptr = np.searchsorted(v[by_dst], np.arange(n + 1))
    length = np.full((n, k), np.inf)  # [n, k] best lengths
    back = np.full((n, k, 2), -1, dtype=np.int64)  # [n, k] (pred, its rank)
    length[s, 0] = 0.0
    for x in order:
        if x == s:
            continue
        e = by_dst[ptr[x] : ptr[x + 1]]
        if e.size == 0:
            continue
        cand = (length[u[e]] + (-np.log(w[e]))[:, None]).ravel()  # [indeg * k]
        best = np.argsort(cand, kind="stable")[:k]
        best = best[np.isfinite(cand[best])]
        length[x, : best.size] = cand[best]
        back[x, : best.size, 0], back[x, : best.size, 1] = u[e][best // k], best % k
    out = []
    for r in range(k):
        if not np.isfinite(length[t, r]):
            break
        path, node, rank = [t], t, r
        while node != s:
            node, rank = back[node, rank]
            path.append(int(node))
        out.append(([nodes[i] for i in reversed(path)], math.exp(-length[t, r])))
    return out


def strongest_paths_per_hop(
    src: Sequence[str], dst: Sequence[str], weight: Sequence[float], k: int = 5, ends: tuple[str, str] = ENDS
) -> list[tuple[list[str], float, float]]:
    """The k source -> target paths of a DAG with the largest per-hop strength (geometric
    mean of the edge weights), without the direct edge; [(nodes, per_hop, product)].

    k-best lengths (sum of -log w) per node and exact hop count h, for h = 1 .. n - 1
    (dynamic programming over h: the paths with h hops extend those with h - 1), then the
    target's candidates of every h ranked by length / h. O(n E k) time, O(n^2 k) state."""
    edges = _path_edges(src, dst, weight, ends)
    if edges is None:
        return []
    nodes, s, t, u, v, w = edges
    n = len(nodes)
    keep = (v != s) & (u != t)  # no hop back into the source or out of the target
    u, v, w = u[keep], v[keep], -np.log(w[keep])  # w: now lengths
    length = np.full((n, n, k), np.inf)  # [hops, node, k]
    back = np.full((n, n, k, 2), -1, dtype=np.int64)  # (pred, its rank)
    length[0, s, 0] = 0.0
    for h in range(1, n):
        cand = length[h - 1][u] + w[:, None]  # [E, k]
        if not np.isfinite(cand).any():
            break
        for x in np.unique(v):
            e = np.flatnonzero(v == x)
            c = cand[e].ravel()
            best = np.argsort(c, kind="stable")[:k]
            best = best[np.isfinite(c[best])]
            length[h, x, : best.size] = c[best]
            back[h, x, : best.size, 0], back[h, x, : best.size, 1] = u[e][best // k], best % k
    cands = [(length[h, t, r] / h, h, r) for h in range(2, n) for r in range(k) if np.isfinite(length[h, t, r])]
    out = []
    for mean, h, r in sorted(cands)[:k]:
        path, node, rank = [t], t, r
        for hop in range(h, 0, -1):
            node, rank = back[hop, node, rank]
            path.append(int(node))
        out.append(([nodes[i] for i in reversed(path)], math.exp(-mean), math.exp(-mean * h)))
    return out
