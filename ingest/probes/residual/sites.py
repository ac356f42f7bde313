"""Where the residual stream is sampled, and capturing it through nnsight.

METHODS §C samples the stream *before attention* and *before the MLP* of every layer.
Each such point is the first input of one module; which modules those are is read from
the architecture table (``ingest.architectures``: ``layers``, ``mlp_norm``, ``final_norm``,
relative to the base model):

- a block's input is the stream before its attention (``layers[i].input``);
- with a sequential residual, the stream before the MLP is the input of the block's
  pre-MLP norm (``ln_2`` in GPT-2, ``post_attention_layernorm`` in Llama and in GPT-NeoX
  built with ``use_parallel_residual=False``): it already holds the attention's output;
- with a parallel residual (GPT-NeoX's default, ``h + attn(ln1(h)) + mlp(ln2(h))``)
  attention and MLP read the same stream, so the sample points are the layer boundaries;
- the last point is the final norm's input (the output of the last block).

So a parallel model has L + 1 points (point 0 = embeddings output) and a sequential one
2L + 1. The point index is the paper's "layer" axis (its Llama 8B has 64 of them) and is
the ``layer`` column of every residual table; ``block`` and ``site`` say what it is.

Capture wraps the *base* model (``model.base_model``: no lm_head, so no logits are ever
computed) in ``nnsight.NNsight`` and reads, inside one trace per batch, every point's
module input in execution order (nnsight 0.8 requires that order), keeping the last
real token of each prompt (``last``) or every position (``all``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ingest.architectures import FAMILIES, Family
from ingest.devices import device_of
from ingest.errors import TdwError


@dataclass(frozen=True)
class SamplePoint:
    layer: int              # index along depth: the tables' ``layer``
    block: int              # the block this stream enters (n_layers for the final point)
    site: str               # 'block_in' (before attention) | 'pre_mlp' | 'final'


@dataclass(frozen=True)
class Layout:
    model_type: str
    arch: Family            # where the blocks and norms are (ingest.architectures)
    n_layers: int
    d_model: int
    vocab_size: int
    context: int            # maximum prompt length (positions)
    parallel: bool
    points: tuple[SamplePoint, ...]

    @property
    def n_points(self) -> int:
        return len(self.points)

    def block_inputs(self) -> list[int]:
        """Points that can be perturbed: the stream entering a block."""
        return [p.layer for p in self.points if p.site == "block_in"]


def layout_of(config: dict) -> Layout:
    """The sample points of a model, from its config.json alone (no weights loaded)."""
    mt = config.get("model_type", "")
    family = FAMILIES.get(mt)
    if family is None:
        raise TdwError(f"residual probe: unsupported architecture {mt!r} "
                       f"(supported: {', '.join(FAMILIES)})")
    n = int(config.get("num_hidden_layers") or config.get("n_layer"))
    d = int(config.get("hidden_size") or config.get("n_embd"))
    ctx = int(config.get("max_position_embeddings") or config.get("n_positions") or 0)
    parallel = family.parallel(config)
    points: list[SamplePoint] = []
    for b in range(n):
        points.append(SamplePoint(len(points), b, "block_in"))
        if not parallel:
            points.append(SamplePoint(len(points), b, "pre_mlp"))
    points.append(SamplePoint(len(points), n, "final"))
    return Layout(mt, family, n, d, int(config["vocab_size"]), ctx, parallel, tuple(points))


def traced_base(model):
    """The base model (no lm_head) wrapped for nnsight tracing."""
    from nnsight import NNsight
    return NNsight(model.base_model)


def capture(traced, layout: Layout, input_ids: torch.Tensor, lengths: torch.Tensor,
            all_tokens: bool = False) -> torch.Tensor:
    """The stream at every sample point for one batch, in one forward pass.

    input_ids [batch, pos] right-padded; lengths [batch] real tokens per row (causal
    attention: a real token never sees the padding after it).
    Returns [batch, points, d_model] at the last real token, or [batch, pos, points,
    d_model] at every position when ``all_tokens``.
    """
    import nnsight

    dev = device_of(traced)                                    # inputs go to the model's device
    input_ids, lengths = input_ids.to(dev), lengths.to(dev)
    rows = torch.arange(input_ids.shape[0], device=dev)
    last = lengths - 1
    blocks = getattr(traced, layout.arch.layers)
    final = getattr(traced, layout.arch.final_norm)
    with torch.no_grad(), traced.trace(input_ids):
        saved = []
        for b in range(layout.n_layers):
            block = blocks[b]
            h = block.input                                    # [batch, pos, d_model]
            saved.append(h if all_tokens else h[rows, last])
            if not layout.parallel:
                h = getattr(block, layout.arch.mlp_norm).input
                saved.append(h if all_tokens else h[rows, last])
        h = final.input
        saved.append(h if all_tokens else h[rows, last])
        saved = nnsight.save(saved)
    return torch.stack([s.detach() for s in saved], dim=-2).float().cpu()   # metrics run on the CPU


def prefix_caches(base, prompts: list[np.ndarray]) -> list[tuple[list[int], object]]:
    """KV caches of the prompts' tokens before their last one, one batch per length.

    base: the plain (unwrapped) base model. Editing a last token's state cannot change
    earlier positions (causal attention), so perturbation runs reuse these caches and run
    only the last token. Returns [(prompt indices, cache or None for one-token prompts)].
    """
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    out = []
    for length, idx in sorted(groups.items()):
        cache = None
        if length > 1:
            ids = torch.as_tensor(np.stack([np.asarray(prompts[i], dtype=np.int64)[:-1]
                                            for i in idx])).to(device_of(base))   # [group, length - 1]
            with torch.no_grad():
                cache = base(ids, use_cache=True).past_key_values
        out.append((idx, cache))
    return out


def run_perturbed(traced, layout: Layout, last_tokens: torch.Tensor, cache, repeats: int,
                  at: int, new_last: torch.Tensor) -> torch.Tensor:
    """Replace the last-token state at block-input point ``at`` and run the rest.

    last_tokens [group]: each prompt's last token id; cache: their ``prefix_caches`` entry
    (copied, then each prompt repeated ``repeats`` times; never modified); new_last
    [group * repeats, d_model]: the replacement states, prompt-major. Returns [group *
    repeats, points, d_model], the last-token stream at every point (points before
    ``at`` unchanged).
    """
    import copy

    import nnsight

    point = layout.points[at]
    if point.site != "block_in":
        raise TdwError(f"residual probe: layer {at} is a {point.site} point; perturbations "
                       f"go at block inputs {layout.block_inputs()}")
    dev = device_of(traced)
    last_tokens, new_last = last_tokens.to(dev), new_last.to(dev)
    b = new_last.shape[0]
    input_ids = last_tokens.repeat_interleave(repeats)[:, None]            # [batch, 1]
    kwargs = {}
    if cache is not None:
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(repeats)
        kwargs = {"past_key_values": cache, "use_cache": True}
    rows = torch.arange(b, device=dev)
    last = torch.zeros(b, dtype=torch.long, device=dev)
    blocks = getattr(traced, layout.arch.layers)
    final = getattr(traced, layout.arch.final_norm)
    with torch.no_grad(), traced.trace(input_ids, **kwargs):
        saved = []
        for b in range(layout.n_layers):
            block = blocks[b]
            h = block.input                                    # [batch, pos, d_model]
            if b == point.block:
                h = h.clone()
                h[rows, last] = new_last.to(h.dtype)
                block.input = h
            saved.append(h[rows, last])
            if not layout.parallel:
                saved.append(getattr(block, layout.arch.mlp_norm).input[rows, last])
        saved.append(final.input[rows, last])
        saved = nnsight.save(saved)
    return torch.stack([s.detach() for s in saved], dim=1).float().cpu()


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; elsewhere a no-op).

    A batch's activations are freed after its metrics are taken, but glibc keeps freed
    blocks below live ones, so without this the resident size creeps up by a fraction of a
    batch per batch although nothing is held (measured in benchmarks/bench_residual.py).
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None
