"""Does ``config.json`` describe the weights beside it? Checked before a model is built.

``from_pretrained`` builds whatever architecture ``config.json`` declares and fills the
parameters the weight files lack with random values, with only a warning: a config that
declares Llama over GPT-NeoX weights loaded a randomly initialised model and its
perplexity (258.7 against the real 73.6) was stored as a success. So before a model is
built, the declared architecture is instantiated on PyTorch's ``meta`` device (no memory,
no compute) and every one of its parameters must be in the weight files under its name
(or without the base-model prefix, as older checkpoints store it) with its exact shape;
parameters tied to another (the unembedding tied to the embedding) may be absent. A
mismatch is a one-line TdwError: the job fails, the batch goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.errors import TdwError

if TYPE_CHECKING:
    from ingest.sources import Checkpoint

_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))


def _candidates(name: str, prefix: str) -> list[str]:
    out = [name]
    if prefix and name.startswith(prefix + "."):
        out.append(name[len(prefix) + 1:])
    for old, new in _RENAMES:
        out += [c[: -len(new)] + old for c in list(out) if c.endswith(new)]
    return out


def check_config_matches_weights(ckpt: "Checkpoint") -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = ckpt.config()                        # bounded sizes first (ingest.sources.CONFIG_LIMITS)
    where = f"{ckpt.model_id}@{ckpt.revision}"
    try:
        config = AutoConfig.from_pretrained(str(ckpt.folder), trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
        raise TdwError(f"{where}: config.json does not describe a model that can be built "
                       f"(model_type {cfg.get('model_type')!r}: {str(e).strip().splitlines()[0][:160]})") from None
    tensors = ckpt.tensors()
    shapes = {}
    for name, (_, raw) in tensors._where.items():   # file names and canonical ones (embed_out = lm_head)
        shapes[raw] = shapes[name] = tensors.shape(name)
    prefix = getattr(model, "base_model_prefix", "") or ""
    missing, wrong = [], []
    for name, param in model.named_parameters():   # tied parameters appear once, under the first name
        hit = next((c for c in _candidates(name, prefix) if c in shapes), None)
        if hit is None:
            missing.append(name)
        elif tuple(shapes[hit]) != tuple(param.shape):
            wrong.append(f"{hit} is {'x'.join(map(str, shapes[hit]))}, the model needs "
                         f"{'x'.join(map(str, param.shape))}")
    arch = type(model).__name__
    if missing:
        raise TdwError(f"{where}: config.json declares {arch} but the weights lack {len(missing)} of its "
                       f"parameters (e.g. {missing[0]}): refusing to run a partly random model")
    if wrong:
        raise TdwError(f"{where}: config.json declares {arch} but {len(wrong)} weights have other shapes "
                       f"({wrong[0]})")
