"""Where each model family keeps its parts: the one architecture table.

The graph probe (``ingest.probes.graph.adapters``), the residual probe
(``ingest.probes.residual.sites``) and checkpoint validation (``ingest.sources``) all need
to know, per Hugging Face ``model_type``, which module is the token embedding, which list
holds the decoder blocks, where a block's attention output projection, MLP and pre-MLP norm
are, and which module is the final norm. Those facts are written once here; each consumer
derives its own view from a ``Family``. (The graph probe's test reference,
``graph/reference.py``, keeps a table of its own on purpose: it is the independent check.)

Paths are attribute paths (``a.b.0.c``) that work on a ``torch.nn.Module`` and on its
nnsight wrapper. ``base`` is the attribute of the causal LM that holds the base model (no
lm_head): ``embed``, ``layers`` and ``final_norm`` are relative to it, ``attn_out``, ``mlp``
and ``mlp_norm`` to one block, ``unembed`` to the causal LM. ``parallel_residual`` is the
default of GPT-NeoX's ``use_parallel_residual`` (its MLP reads the same stream as its
attention); the other families are always sequential.

Imports nothing heavy: the dbt macro ``tensor_parts.sql`` classifies tensor names by these
same module names (a unit test checks that it agrees).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    base: str                       # attribute of the causal LM: the base model (no lm_head)
    embed: str                      # token embedding, in the base model
    layers: str                     # ModuleList of decoder blocks, in the base model
    attn_out: str                   # attention output projection, in a block
    mlp: str                        # the MLP, in a block
    mlp_norm: str                   # the norm before the MLP, in a block (sequential residual)
    final_norm: str                 # the final norm, in the base model
    unembed: str = "lm_head"        # the unembedding, on the causal LM
    unembed_in_file: str = "lm_head"   # its name in checkpoint files (GPT-NeoX: embed_out)
    conv1d: bool = False            # GPT-2's Conv1D stores weights as [in, out]
    parallel_residual: bool | None = None   # use_parallel_residual's default; None: never parallel

    def path(self, part: str) -> str:
        """The path of a base-model part (``embed``, ``layers``, ``final_norm``) from the causal LM."""
        return f"{self.base}.{getattr(self, part)}"

    @property
    def embed_weight(self) -> str:
        return f"{self.path('embed')}.weight"

    @property
    def unembed_weight(self) -> str:
        return f"{self.unembed}.weight"

    def parallel(self, config: Any) -> bool:
        """Whether a block's MLP reads the same stream as its attention (config: dict or object)."""
        if self.parallel_residual is None:
            return False
        value = (config.get("use_parallel_residual", self.parallel_residual) if isinstance(config, dict)
                 else getattr(config, "use_parallel_residual", self.parallel_residual))
        return bool(value)


GPT_NEOX = Family("gpt_neox", "gpt_neox", "embed_in", "layers", "attention.dense", "mlp",
                  "post_attention_layernorm", "final_layer_norm", unembed_in_file="embed_out",
                  parallel_residual=True)
GPT2 = Family("gpt2", "transformer", "wte", "h", "attn.c_proj", "mlp", "ln_2", "ln_f", conv1d=True)
LLAMA = Family("llama", "model", "embed_tokens", "layers", "self_attn.o_proj", "mlp",
               "post_attention_layernorm", "norm")

FAMILIES: dict[str, Family] = {"gpt_neox": GPT_NEOX, "gpt2": GPT2, "llama": LLAMA,
                               "mistral": LLAMA, "qwen2": LLAMA}

# The embedding and unembedding weights of every family, as loaded (checkpoint validation).
EMBEDDING_TENSORS: tuple[str, ...] = tuple(dict.fromkeys(
    name for f in FAMILIES.values() for name in (f.unembed_weight, f.embed_weight)))


def model_type_of(config: Any) -> str | None:
    """A Hugging Face config's ``model_type`` (config: dict or object)."""
    return config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
