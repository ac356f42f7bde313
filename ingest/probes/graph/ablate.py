"""Batched ablations through nnsight: every edge of the component graph in a few traces.

Edge u -> v (v reads what u wrote; see ``adapters``) is measured by ablating u — setting
its write to zero, or to its mean over the prompt set's real tokens — running the rest
of the model, and comparing v's output with the clean run at the measured positions:

    weight = 1 - cos(v_ablated, v_clean)        rel_l2 = |v_ablated - v_clean| / |v_clean|

each averaged over a prompt's measured positions (one value per prompt; the probe then
takes mean, standard deviation and count over prompts). For v = ``logits`` the outputs
are the logit vectors, and also KL(clean || ablated) of the next-token distributions
and the change of the task loss (cross-entropy of the next token, ablated - clean).

How it is fast (exact: the same values as one full ablated forward per node, up to float
rounding, ~1e-7 here; the tests compare with such a reference within 1e-5):

1. One clean trace saves every layer's input, every head's pre-projection output
   (the input of the attention output projection, [batch, pos, heads * d_head]), every
   MLP output and the final-norm output.
2. The nodes of layer l (its heads and its MLP) are ablated together in one trace whose
   batch holds one copy of the prompts per node. Upstream layers are *skipped* (nnsight
   ``skip``, returning the clean stream), so only what follows is recomputed: with a
   parallel residual layer l itself is skipped too, its output being the clean one with
   node i's write swapped for the ablated value in copy i; with a sequential residual
   layer l runs with copy i's head slice or MLP output edited (its MLP reads its heads).
   The embed node is a one-copy trace of the whole model.
   In each trace, modules are read and edited in execution order, as nnsight requires.
   When the logits are not wanted the trace stops after the last layer that has a
   reader; the unembedding never runs inside a trace.
3. The unembedding is applied afterwards, to the final-norm states at the measured
   positions only, for all ablated nodes at once, in chunks bounded by
   ``logits_chunk_mb``. KL, loss, cosine and L2 come from logsumexp and dot products,
   without materialising the ablated log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ingest.probes.graph.adapters import EMBED, LOGITS, MEASURES, Adapter, node_head, node_kind
from ingest.probes.graph.tasks import TaskBatch

EPS = 1e-8


@dataclass
class EdgeMeasures:
    """Per-prompt values of every edge: ``values[m]`` is [edges, prompts] (NaN: not measured)."""

    src: list[str]
    dst: list[str]
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    clean_loss: torch.Tensor | None = None  # [prompts] clean task loss (None: no logits)


@dataclass
class _Clean:
    layer_in: list[torch.Tensor]  # per layer, then the final norm: [n, T, d] residual stream read
    z: list[torch.Tensor]  # per layer [n, T, H * dh]: heads before the output projection
    mlp: list[torch.Tensor]  # per layer [n, T, d]
    embed: torch.Tensor  # [n, T, d] token-embedding output
    final: torch.Tensor | None  # [n, T, d] final-norm output


@dataclass(frozen=True)
class _Forward:
    """What every ablation group of one graph shares: the traced model, its adapter, the
    prompt ids [n, T], the clean run, the mean-ablation values (None: zero ablation) and
    whether the runs go on to the final norm (for the logit measures)."""

    nn_model: Any
    ad: Adapter
    ids: torch.Tensor
    clean: _Clean
    means: dict[str, Any] | None
    final: bool


def wrap(model: torch.nn.Module):
    """The nnsight envoy of a Hugging Face causal LM."""
    from nnsight import NNsight

    return model if hasattr(model, "_module") else NNsight(model)


@dataclass
class _Edits:
    """What one traced run changes: layers < ``start`` skipped (returning ``resid_in``);
    ``head_edits`` rows get head h's pre-projection slice replaced (None: zeros) at layer
    ``start``; ``mlp_edit`` rows get the MLP output replaced; ``embed_value`` replaces the
    token embedding of every row. The default changes nothing (the clean run)."""

    start: int = 0
    resid_in: torch.Tensor | None = None  # [rows, T, d]
    embed_value: torch.Tensor | None = None
    head_edits: list[tuple[slice, int, torch.Tensor | None]] = field(default_factory=list)
    mlp_edit: tuple[slice, torch.Tensor | None] | None = None


def _trace(
    nn_model: Any, ad: Adapter, ids: torch.Tensor, edits: _Edits, *, last: int, final: bool, save_layer_in: bool = False
) -> dict[str, Any]:
    """One run with ``edits``; saves z and MLP outputs of layers start..last."""
    start, resid_in, embed_value = edits.start, edits.resid_in, edits.embed_value
    head_edits, mlp_edit = edits.head_edits, edits.mlp_edit
    dh = ad.d_head
    out: dict[str, Any] = {"z": {}, "mlp": {}, "layer_in": {}}
    with nn_model.trace(ids, use_cache=False) as tracer:
        if embed_value is not None or save_layer_in:
            emb = ad.get(nn_model, ad.embed).output
            if embed_value is not None:
                emb[...] = embed_value
            out["embed"] = emb.save()
        for j in range(start):
            ad.layer(nn_model, j).skip(resid_in)
        for j in range(start, last + 1):
            if save_layer_in:
                out["layer_in"][j] = ad.layer(nn_model, j).input.save()
            z = ad.attn_out_module(nn_model, j).input  # [rows, T, H * dh]
            if j == start:
                for rows, h, value in head_edits:
                    z[rows, :, h * dh : (h + 1) * dh] = 0.0 if value is None else value
            out["z"][j] = z.save()
            m = ad.mlp_module(nn_model, j).output  # [rows, T, d]
            if j == start and mlp_edit is not None:
                m[mlp_edit[0]] = 0.0 if mlp_edit[1] is None else mlp_edit[1]
            out["mlp"][j] = m.save()
        if save_layer_in:
            out["layer_in"][ad.n_layers] = ad.get(nn_model, ad.final_norm).input.save()
        if final:
            out["final"] = ad.get(nn_model, ad.final_norm).output.save()
        tracer.stop()
    return out


def _clean_run(nn_model: Any, ad: Adapter, ids: torch.Tensor, final: bool) -> _Clean:
    r = _trace(nn_model, ad, ids, _Edits(), last=ad.n_layers - 1, final=final, save_layer_in=True)
    return _Clean(
        [r["layer_in"][j] for j in range(ad.n_layers + 1)],
        [r["z"][j] for j in range(ad.n_layers)],
        [r["mlp"][j] for j in range(ad.n_layers)],
        r["embed"],
        r.get("final"),
    )


def _per_prompt(x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over each prompt's measured positions: [..., M] -> [..., n]."""
    out = torch.zeros(*x.shape[:-1], n, dtype=torch.float64, device=x.device)
    out.index_add_(x.dim() - 1, prompt.to(x.device), x.double())
    counts = torch.bincount(prompt, minlength=n).clamp(min=1).double().to(x.device)
    return (out / counts).cpu()


def _compare(abl: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1 - cos and relative L2 change along the last dim: abl [..., d] vs clean broadcastable."""
    cos = F.cosine_similarity(abl, clean.expand_as(abl), dim=-1, eps=EPS)
    rel = (abl - clean).norm(dim=-1) / clean.norm(dim=-1).clamp(min=EPS)
    return (1.0 - cos).clamp(0.0, 2.0), rel  # rounding can put cos past 1


def _mean_values(c: _Clean, valid: torch.Tensor) -> dict[str, Any]:
    """Mean-ablation values: each write averaged over the prompt set's real tokens."""

    def mean(x: torch.Tensor) -> torch.Tensor:  # [n, T, k] -> [k]
        return x[valid].mean(dim=0)

    return {"embed": mean(c.embed), "z": [mean(z) for z in c.z], "mlp": [mean(m) for m in c.mlp]}


def component_graph(
    model: torch.nn.Module,
    ad: Adapter,
    batch: TaskBatch,
    ablation: str = "zero",
    logits: bool = True,
    logits_chunk_mb: float = 256.0,
) -> EdgeMeasures:
    """Per-prompt measures of every edge the architecture allows (``logits=False``: no edges
    into ``logits``)."""
    if ablation not in ("zero", "mean"):
        raise ValueError(f"unknown ablation {ablation!r}")
    nn_model = wrap(model)
    hf = nn_model._module
    ids, n = batch.ids, batch.ids.shape[0]
    mp, mt = batch.measure.nonzero(as_tuple=True)  # [M] prompt, [M] position
    w_o = ad.head_out_weights(hf)  # [L, H, dh, d]
    L, H = ad.n_layers, ad.n_heads

    def heads_out(z: torch.Tensor, j: int) -> torch.Tensor:  # [rows, T, H*dh] -> [K, M, H, d]
        k = z.shape[0] // n
        zm = z.view(k, n, *z.shape[1:])[:, mp, mt].view(k, -1, H, ad.d_head)
        return torch.einsum("kmhe,hed->kmhd", zm, w_o[j])

    def at_measured(x: torch.Tensor) -> torch.Tensor:  # [rows, T, d] -> [K, M, d]
        k = x.shape[0] // n
        return x.view(k, n, *x.shape[1:])[:, mp, mt]

    with torch.no_grad():
        clean = _clean_run(nn_model, ad, ids, final=logits)
        means = _mean_values(clean, batch.valid) if ablation == "mean" else None
        fw = _Forward(nn_model, ad, ids, clean, means, final=logits)
        clean_heads = [heads_out(clean.z[j], j)[0] for j in range(L)]  # [M, H, d]
        clean_mlp = [at_measured(clean.mlp[j])[0] for j in range(L)]  # [M, d]

        results: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
        finals: list[tuple[str, torch.Tensor]] = []  # (node, [M, d])
        for group_layer, nodes in _groups(ad):
            readers = {u: [v for v in ad.readers(u) if v != LOGITS] for u in nodes}
            last = max((node_kind(v)[1] for u in nodes for v in readers[u]), default=-1)
            if not logits and last < 0:
                continue
            if logits:
                last = L - 1
            start, run = _run_group(fw, group_layer, len(nodes), last)
            for j in range(start, last + 1):
                hw, hr = _compare(heads_out(run["z"][j], j), clean_heads[j][None])  # [K, M, H]
                mw, mr = _compare(at_measured(run["mlp"][j]), clean_mlp[j][None])  # [K, M]
                hw, hr = _per_prompt(hw.transpose(1, 2), mp, n), _per_prompt(hr.transpose(1, 2), mp, n)
                mw, mr = _per_prompt(mw, mp, n), _per_prompt(mr, mp, n)  # [K, n]
                for i, u in enumerate(nodes):
                    for v in readers[u]:
                        kind, layer = node_kind(v)
                        if layer != j:
                            continue
                        if kind == "mlp":
                            results[(u, v)] = {"weight": mw[i], "rel_l2": mr[i]}
                        else:
                            h = node_head(v)
                            results[(u, v)] = {"weight": hw[i, h], "rel_l2": hr[i, h]}
            if logits:
                fin = at_measured(run["final"])  # [K, M, d]
                finals += [(u, fin[i]) for i, u in enumerate(nodes)]
        if logits:
            unembed = ad.get(hf, ad.unembed)
            clean_final = at_measured(clean.final)[0]  # [M, d]
            lm, clean_loss = _logit_measures(
                unembed, clean_final, torch.stack([f for _, f in finals]), batch.targets[mp, mt], logits_chunk_mb
            )
            for i, (u, _) in enumerate(finals):
                results[(u, LOGITS)] = {m: _per_prompt(lm[m][i], mp, n) for m in lm}

    edges = ad.graph_edges() if logits else [(u, v) for u, v in ad.graph_edges() if v != LOGITS]
    out = EdgeMeasures(
        [u for u, _ in edges],
        [v for _, v in edges],
        clean_loss=_per_prompt(clean_loss, mp.cpu(), n) if logits else None,
    )
    nan = torch.full((n,), float("nan"), dtype=torch.float64)
    for m in MEASURES:
        out.values[m] = (
            torch.stack([results[e].get(m, nan) for e in edges]) if edges else torch.zeros(0, n, dtype=torch.float64)
        )
    return out


def _run_group(fw: _Forward, layer: int, k: int, last: int) -> tuple[int, dict[str, Any]]:
    """Run one ablation group; returns (first recomputed layer, the trace's saves).

    embed (layer -1): one copy, the embedding replaced, every layer recomputed.
    Layer l with a parallel residual: nothing downstream of l reads l's heads before the
    next layer, so layer l itself is not rerun: copy i starts at layer l + 1 from the clean
    stream with node i's write swapped for its ablated value (zero or mean) — the same sum
    the layer would form. Otherwise (sequential residual, where l's MLP reads l's heads)
    layers < l are skipped and layer l runs with copy i's head slice or MLP output edited.
    """
    nn_model, ad, ids, clean, means, final = fw.nn_model, fw.ad, fw.ids, fw.clean, fw.means, fw.final
    n, H, dh = ids.shape[0], ad.n_heads, ad.d_head
    rows = [slice(i * n, (i + 1) * n) for i in range(k)]
    if layer < 0:
        value = means["embed"] if means else torch.zeros(())
        return 0, _trace(nn_model, ad, ids, _Edits(embed_value=value), last=last, final=final)
    z_mean = means["z"][layer].view(H, dh) if means else None  # [H, dh]
    m_mean = means["mlp"][layer] if means else None  # [d]
    if ad.parallel:
        w_o = ad.head_out_weights(nn_model._module)[layer]  # [H, dh, d]
        z = clean.z[layer].view(n, -1, H, dh)  # [n, T, H, dh]
        resid = clean.layer_in[layer + 1].repeat(k, 1, 1)  # [k * n, T, d]
        for h in range(H):
            repl = torch.zeros(()) if z_mean is None else z_mean[h]
            resid[rows[h]] += (repl - z[:, :, h]) @ w_o[h]
        resid[rows[H]] += (0.0 if m_mean is None else m_mean) - clean.mlp[layer]
        return layer + 1, _trace(
            nn_model, ad, ids.repeat(k, 1), _Edits(start=layer + 1, resid_in=resid), last=last, final=final
        )
    edits = _Edits(
        start=layer,
        resid_in=clean.layer_in[layer].repeat(k, 1, 1),
        head_edits=[(rows[h], h, None if z_mean is None else z_mean[h]) for h in range(H)],
        mlp_edit=(rows[H], m_mean),
    )
    return layer, _trace(nn_model, ad, ids.repeat(k, 1), edits, last=last, final=final)


def _groups(ad: Adapter) -> list[tuple[int, list[str]]]:
    """Ablation groups in computation order: (layer, nodes); embed is layer -1 alone.
    A layer's nodes are its heads in order, then its MLP (row blocks of the batch)."""
    out = [(-1, [EMBED])]
    nodes = ad.nodes()
    for l in range(ad.n_layers):
        out.append((l, nodes[1 + l * (ad.n_heads + 1) : 1 + (l + 1) * (ad.n_heads + 1)]))
    return out


def _logit_measures(
    unembed: torch.nn.Module, clean: torch.Tensor, abl: torch.Tensor, targets: torch.Tensor, chunk_mb: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Measures into ``logits`` per node and position: clean [M, d], abl [K, M, d] -> [K, M];
    and the clean loss per position [M].

    Written in the logit difference d = a - c (ablated minus clean logits), which keeps
    small effects accurate in float32: with p = softmax(c),
    KL(p || q) = logsumexp(log p + d) - p . d;  dloss = logsumexp(log p + d) - d[target];
    rel_l2 = |d| / |c|;  cos = a . c / (|a| |c|) (0 when either vector is 0).
    """
    k, m_total, _ = abl.shape
    vocab = unembed.weight.shape[0]
    per_row = vocab * 4 * (2 * k + 4)  # bytes a measured position costs
    step = max(1, int(chunk_mb * 2**20 // per_row))
    out = {name: torch.empty(k, m_total, dtype=torch.float64) for name in MEASURES}
    clean_loss = torch.empty(m_total, dtype=torch.float64)
    for s in range(0, m_total, step):
        e = min(m_total, s + step)
        lc = unembed(clean[s:e])  # [c, V]
        lp_c = torch.log_softmax(lc, dim=-1)
        clean_loss[s:e] = -lp_c.gather(-1, targets[s:e, None])[:, 0].double()
        la = unembed(abl[:, s:e])  # [K, c, V]
        norm_c = lc.norm(dim=-1)[None]  # [1, c]
        cos = torch.einsum("kcv,cv->kc", la, lc) / (la.norm(dim=-1) * norm_c).clamp(min=EPS)
        d = la.sub_(lc)  # [K, c, V] (in place)
        p_d = torch.einsum("kcv,cv->kc", d, lp_c.exp())  # [K, c]
        rel = d.norm(dim=-1) / norm_c.clamp(min=EPS)
        d_t = d.gather(-1, targets[None, s:e, None].expand(k, -1, 1))[..., 0]
        shift = torch.logsumexp(d.add_(lp_c), dim=-1)  # [K, c] = lse(a) - lse(c)
        out["kl"][:, s:e] = (shift - p_d).clamp(min=0.0).double()
        out["dloss"][:, s:e] = (shift - d_t).double()
        out["weight"][:, s:e] = (1.0 - cos).clamp(0.0, 2.0).double()
        out["rel_l2"][:, s:e] = rel.double()
    return out, clean_loss
