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


def reference_graph(model: torch.nn.Module, ids: torch.Tensor, measure: torch.Tensor,
                    valid: torch.Tensor, ablation: str = "zero", recompute_clean: bool = True
                    ) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """{(u, v): {measure: [n] float64}} for every component u and every later v, and logits.

    ids [n, T]; measure/valid [n, T] bool. Measures at position t compare outputs at t;
    the logits at t are scored on ids[t + 1].
    """
    cfg = model.config
    embed_path, layers_path, attn_path, mlp_path, conv1d = MODULES[cfg.model_type]
    layers = _get(model, layers_path)
    n_heads = cfg.num_attention_heads if hasattr(cfg, "num_attention_heads") else cfg.n_head
    attn_outs = [_get(layer, attn_path) for layer in layers]
    mlps = [_get(layer, mlp_path) for layer in layers]
    d_in = attn_outs[0].weight.shape[0] if conv1d else attn_outs[0].weight.shape[1]
    d_head = d_in // n_heads

    def head_weight(l: int, h: int) -> torch.Tensor:              # [d_head, d_model]
        w = attn_outs[l].weight
        return w[h * d_head:(h + 1) * d_head, :] if conv1d else w[:, h * d_head:(h + 1) * d_head].T

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
                z = args[0].clone()                                  # [n, T, H * dh]
                for h in range(n_heads):
                    if ablate == f"L{l}.H{h}":
                        sl = slice(h * d_head, (h + 1) * d_head)
                        z[..., sl] = 0.0 if means is None else means[ablate]
                for h in range(n_heads):
                    caught[f"L{l}.H{h}"] = z[..., h * d_head:(h + 1) * d_head] @ head_weight(l, h)
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
                    means[f"L{l}.H{h}"] = zmean[h * d_head:(h + 1) * d_head]
                means[f"L{l}.MLP"] = clean[f"L{l}.MLP"][valid].mean(0)
        out = {}
        for i, u in enumerate(names):
            if recompute_clean:
                clean, clean_logits = forward(None, None)
            abl, abl_logits = forward(u, means)
            for v in names[i + 1:] + ["logits"]:
                a, c = (abl_logits, clean_logits) if v == "logits" else (abl[v], clean[v])
                out[(u, v)] = _measures(a, c, ids, measure, v == "logits")
    return out


def _measures(a: torch.Tensor, c: torch.Tensor, ids: torch.Tensor, measure: torch.Tensor,
              is_logits: bool) -> dict[str, torch.Tensor]:
    n = ids.shape[0]
    res = {k: torch.zeros(n, dtype=torch.float64) for k in ("weight", "rel_l2", "kl", "dloss")}
    for i in range(n):
        pos = measure[i].nonzero()[:, 0]
        ai, ci = a[i, pos].double(), c[i, pos].double()           # [m, d] or [m, V]
        res["weight"][i] = (1 - F.cosine_similarity(ai, ci, dim=-1, eps=1e-8)).mean()
        res["rel_l2"][i] = ((ai - ci).norm(dim=-1) / ci.norm(dim=-1)).mean()
        if is_logits:
            lp_c, lp_a = torch.log_softmax(ci, -1), torch.log_softmax(ai, -1)
            res["kl"][i] = (lp_c.exp() * (lp_c - lp_a)).sum(-1).mean()
            tgt = ids[i, pos + 1]
            res["dloss"][i] = (lp_c.gather(-1, tgt[:, None]) - lp_a.gather(-1, tgt[:, None])).mean()
        else:
            res["kl"][i] = res["dloss"][i] = float("nan")
    return res
