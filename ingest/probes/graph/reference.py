"""The naive component graph: the independent reference for tests and the benchmark baseline.

Deliberately straightforward and independent of ``ablate``/``adapters``: its own module
table, plain PyTorch forward hooks, one full forward (all positions, full logits) per
ablated node, plus, like public scripts, a fresh clean forward per node unless
``recompute_clean=False``. Every measure is computed per prompt and position in float64
from the captured float32 activations, with textbook formulas (log_softmax, cosine).
It measures *every* (u, v) pair of components, allowed or not, so tests can check which
pairs the ablation actually influences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ingest.probes.graph.tasks import TaskBatch

# arch -> (embedding, layer list, attention output projection, mlp, W_O stored as [in, out]?)
MODULES = {
    "gpt_neox": ("gpt_neox.embed_in", "gpt_neox.layers", "attention.dense", "mlp", False),
    "gpt2": ("transformer.wte", "transformer.h", "attn.c_proj", "mlp", True),
    "llama": ("model.embed_tokens", "model.layers", "self_attn.o_proj", "mlp", False),
}


def _get(root, path: str):
    for p in path.split("."):
        root = getattr(root, p)
    return root


def reference_graph(
    model: torch.nn.Module,
    batch: TaskBatch,
    ablation: str = "zero",
    *,
    recompute_clean: bool = True,
    logits: bool = True,
    dtype: torch.dtype = torch.float64,
) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """{(u, v): {measure: [n] float64}} for every component u and every later v, and logits.

    Reads the batch's ids [n, T] and its measure/valid masks [n, T] (bool), not its
    targets: measures at position t compare outputs at t; the logits at t are scored on
    ids[t + 1], computed here. ``logits=False`` skips the pairs into
    logits (the forwards still compute full logits, as public scripts do); ``dtype`` is
    the precision of the measures (float64 for tests, float32 for the benchmark).
    """
    ids, measure, valid = batch.ids, batch.measure, batch.valid
    cfg = model.config
    embed_path, layers_path, attn_path, mlp_path, conv1d = MODULES[cfg.model_type]
    layers = _get(model, layers_path)
    n_heads = cfg.num_attention_heads if hasattr(cfg, "num_attention_heads") else cfg.n_head
    attn_outs = [_get(layer, attn_path) for layer in layers]
    mlps = [_get(layer, mlp_path) for layer in layers]
    d_in = attn_outs[0].weight.shape[0] if conv1d else attn_outs[0].weight.shape[1]
    d_head = d_in // n_heads

    def head_weight(l: int, h: int) -> torch.Tensor:  # [d_head, d_model]
        w = attn_outs[l].weight
        return w[h * d_head : (h + 1) * d_head, :] if conv1d else w[:, h * d_head : (h + 1) * d_head].T

    names = ["embed"]
    for l in range(len(layers)):
        names += [f"L{l}.H{h}" for h in range(n_heads)] + [f"L{l}.MLP"]

    def forward(ablate: str | None, means: dict | None):
        """One full forward with hooks; returns {component: [n, T, d]} and logits [n, T, V]."""
        caught, hooks = {}, []

        def edit(x: torch.Tensor, value) -> torch.Tensor:
            x = x.clone()
            x[...] = 0.0 if value is None else value
            return x

        def embed_hook(mod, inp, out):
            if ablate == "embed":
                out = edit(out, means["embed"] if means else None)
            caught["embed"] = out
            return out

        hooks.append(_get(model, embed_path).register_forward_hook(embed_hook))
        for l in range(len(layers)):

            def pre(mod, args, l=l):
                z = args[0].clone()  # [n, T, H * dh]
                for h in range(n_heads):
                    if ablate == f"L{l}.H{h}":
                        sl = slice(h * d_head, (h + 1) * d_head)
                        z[..., sl] = 0.0 if means is None else means[ablate]
                for h in range(n_heads):
                    caught[f"L{l}.H{h}"] = z[..., h * d_head : (h + 1) * d_head] @ head_weight(l, h)
                caught[f"L{l}.Z"] = z
                return (z,) + tuple(args[1:])

            def post(mod, inp, out, l=l):
                if ablate == f"L{l}.MLP":
                    out = edit(out, means[ablate] if means else None)
                caught[f"L{l}.MLP"] = out
                return out

            hooks.append(attn_outs[l].register_forward_pre_hook(pre))
            hooks.append(mlps[l].register_forward_hook(post))
        try:
            logits = model(ids, use_cache=False).logits
        finally:
            for hk in hooks:
                hk.remove()
        return caught, logits

    with torch.no_grad():
        clean, clean_logits = forward(None, None)
        means = None
        if ablation == "mean":
            means = {"embed": clean["embed"][valid].mean(0)}
            for l in range(len(layers)):
                zmean = clean[f"L{l}.Z"][valid].mean(0)
                for h in range(n_heads):
                    means[f"L{l}.H{h}"] = zmean[h * d_head : (h + 1) * d_head]
                means[f"L{l}.MLP"] = clean[f"L{l}.MLP"][valid].mean(0)
        out = {}
        for i, u in enumerate(names):
            if recompute_clean:
                clean, clean_logits = forward(None, None)
            abl, abl_logits = forward(u, means)
            for v in names[i + 1 :] + (["logits"] if logits else []):
                a, c = (abl_logits, clean_logits) if v == "logits" else (abl[v], clean[v])
                out[(u, v)] = _measures(a, c, ids, measure, v == "logits", dtype)
    return out


def _measures(
    a: torch.Tensor, c: torch.Tensor, ids: torch.Tensor, measure: torch.Tensor, is_logits: bool, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Per-position measures at the measured positions, averaged per prompt."""
    n = ids.shape[0]
    prompt, pos = measure.nonzero(as_tuple=True)  # [M]
    am, cm = a[prompt, pos].to(dtype), c[prompt, pos].to(dtype)  # [M, d] or [M, V]
    per_pos = {
        "weight": 1 - F.cosine_similarity(am, cm, dim=-1, eps=1e-8),
        "rel_l2": (am - cm).norm(dim=-1) / cm.norm(dim=-1),
    }
    if is_logits:
        lp_c, lp_a = torch.log_softmax(cm, -1), torch.log_softmax(am, -1)
        per_pos["kl"] = (lp_c.exp() * (lp_c - lp_a)).sum(-1)
        tgt = ids[prompt, pos + 1][:, None]
        per_pos["dloss"] = (lp_c.gather(-1, tgt) - lp_a.gather(-1, tgt))[:, 0]
    counts = torch.bincount(prompt, minlength=n).to(torch.float64)
    res = {
        k: torch.zeros(n, dtype=torch.float64).index_add_(0, prompt, v.double()) / counts for k, v in per_pos.items()
    }
    if not is_logits:
        res["kl"] = res["dloss"] = torch.full((n,), float("nan"), dtype=torch.float64)
    return res
