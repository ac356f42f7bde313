"""Architecture adapters for the component graph, chosen from the Hugging Face config.

An adapter says where a causal LM keeps the pieces the graph needs, as attribute paths
that work both on the bare ``torch.nn.Module`` and on its nnsight wrapper:

- ``embed``: the token-embedding module whose output is the ``embed`` node's write into
  the residual stream (GPT-2's position embedding ``wpe`` is *not* part of the node: it
  carries no token content and stays in place when ``embed`` is ablated);
- per layer, ``attn_out``: the attention output projection. Its *input* is
  [batch, pos, heads * d_head]; head h's write into the residual stream is the slice
  h * d_head:(h + 1) * d_head of that input times the matching columns of the projection
  (``head_out_weights``). After the projection heads are mixed, so nothing is read there;
- per layer, ``mlp``: the MLP module, whose output is the ``L{l}.MLP`` node's write;
- ``final_norm`` and ``unembed`` (lm_head), and ``parallel``: whether a layer's MLP
  reads the same stream as its attention (GPT-NeoX's ``use_parallel_residual``) or the
  stream after it (GPT-2, Llama, GPT-NeoX without the parallel residual).

Where each family keeps those modules is ``ingest.architectures``' table (shared with the
residual probe and checkpoint validation); this module adds the graph's view of it.
``component_name`` is the one function that names nodes; ``graph_edges`` lists exactly
the edges the architecture allows: u -> v when v reads what u wrote.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.architectures import FAMILIES, model_type_of
from ingest.errors import TdwError

if TYPE_CHECKING:
    import torch

EMBED, LOGITS = "embed", "logits"
MEASURES = ("weight", "rel_l2", "kl", "dloss")   # per edge; kl and dloss only into logits


def component_name(kind: str, layer: int | None = None, head: int | None = None) -> str:
    """'embed', 'logits', 'L{l}.H{h}' (kind 'head') or 'L{l}.MLP' (kind 'mlp')."""
    if kind in (EMBED, LOGITS):
        return kind
    if kind == "head":
        return f"L{layer}.H{head}"
    if kind == "mlp":
        return f"L{layer}.MLP"
    raise ValueError(f"unknown component kind {kind!r}")


@dataclass(frozen=True)
class Adapter:
    arch: str
    n_layers: int
    n_heads: int
    d_head: int
    d_model: int
    n_ctx: int
    vocab_size: int
    parallel: bool
    embed: str              # path of the token-embedding module
    layers: str             # path of the ModuleList of decoder layers
    attn_out: str           # path, inside a layer, of the attention output projection
    mlp: str                # path, inside a layer, of the MLP
    final_norm: str
    unembed: str
    conv1d: bool = False    # GPT-2's Conv1D stores the weight as [in, out]

    # --- module access (works on an nn.Module and on an nnsight Envoy) -------------------
    @staticmethod
    def get(root: Any, path: str) -> Any:
        for part in path.split("."):
            root = root[int(part)] if part.isdigit() else getattr(root, part)
        return root

    def layer(self, root: Any, l: int) -> Any:
        return self.get(root, self.layers)[l]

    def attn_out_module(self, root: Any, l: int) -> Any:
        return self.get(self.layer(root, l), self.attn_out)

    def mlp_module(self, root: Any, l: int) -> Any:
        return self.get(self.layer(root, l), self.mlp)

    def head_out_weights(self, model: "torch.nn.Module") -> "torch.Tensor":
        """W_O split by head: [layers, heads, d_head, d_model]; head h writes z_h @ W_O[l, h]."""
        import torch
        ws = []
        for l in range(self.n_layers):
            w = self.attn_out_module(model, l).weight.detach()
            w = w if self.conv1d else w.T                          # [heads * d_head, d_model]
            ws.append(w.reshape(self.n_heads, self.d_head, self.d_model))
        return torch.stack(ws)

    # --- the graph ---------------------------------------------------------------------
    def nodes(self) -> list[str]:
        """Every node in computation order."""
        out = [EMBED]
        for l in range(self.n_layers):
            out += [component_name("head", l, h) for h in range(self.n_heads)]
            out.append(component_name("mlp", l))
        return out + [LOGITS]

    def readers(self, u: str) -> list[str]:
        """The nodes that read what ``u`` wrote, in computation order."""
        if u == LOGITS:
            return []
        kind, layer = node_kind(u)
        out = []
        for v in self.nodes()[1:-1]:
            vk, vl = node_kind(v)
            if vl > layer or (vl == layer and kind == "head" and vk == "mlp" and not self.parallel):
                out.append(v)
        return out + [LOGITS]

    def graph_edges(self) -> list[tuple[str, str]]:
        return [(u, v) for u in self.nodes()[:-1] for v in self.readers(u)]


def node_kind(name: str) -> tuple[str, int]:
    """(kind, layer) of a node name; embed is layer -1, logits layer 10**9."""
    if name == EMBED:
        return EMBED, -1
    if name == LOGITS:
        return LOGITS, 10 ** 9
    layer, part = name[1:].split(".", 1)
    return ("mlp" if part == "MLP" else "head"), int(layer)


def node_head(name: str) -> int | None:
    return int(name.split(".H", 1)[1]) if ".H" in name else None


# --- construction from a config ------------------------------------------------------------
def adapter_for(config: Any) -> Adapter:
    """The adapter for a Hugging Face config (object or dict), or a TdwError naming those supported."""
    family = FAMILIES.get(model_type_of(config))
    if family is None:
        raise TdwError(f"the graph probe has no adapter for architecture {model_type_of(config)!r}; "
                       f"supported: {', '.join(sorted(FAMILIES))}")
    if isinstance(config, dict):
        from transformers import AutoConfig
        config = AutoConfig.for_model(**config)
    c = config   # transformers maps GPT-2's n_layer, n_head, n_embd, n_positions to these names
    d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return Adapter(c.model_type, c.num_hidden_layers, c.num_attention_heads, d_head, c.hidden_size,
                   c.max_position_embeddings, c.vocab_size, family.parallel(c), family.path("embed"),
                   family.path("layers"), family.attn_out, family.mlp, family.path("final_norm"),
                   family.unembed, conv1d=family.conv1d)
