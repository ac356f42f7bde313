"""Teacher-forced NLL and causal unmasking (Nicolini et al. 2024, §4.2; METHODS §B).

(The teacher-forced NLL, eq. 6, is ``ingest.probes.perplexity.forward_nll``.)

*Causal unmasking* (the paper's Figures 5 and 6): for an item of t_s tokens and every
prefix length k = 1..t_s-1, the model completes x_1..x_k greedily up to t_s tokens; the
log-probabilities of its own generated tokens g_{k+1..t_s} are recorded (the perplexity of
generated tokens is exp of minus their mean).

The cached implementation batches every prefix of several items together:
1. one forward pass over the items (right-padded, ``x[:t_s-1]``) fills a KV cache, and its
   logits at position k-1 give every row's first generated token;
2. the cache is expanded to one row per (item, k) (``reorder_cache`` with the item index);
   row (item, k) may attend to cache slots s < k only, and to its own generated tokens,
   appended at slots P, P+1, ... (P the prefill width) with their true positions k, k+1, ...
   passed as ``position_ids`` and a 4-D additive mask that encodes both constraints;
3. each decode step feeds one token per row into a preallocated ``StaticCache`` (written
   in place); rows are ordered by how many tokens they still need, so finished rows sit
   at the end of the batch, which is cut to the rows still running each time they fall
   to half of it (a few cache copies in all, not one per step).
The naive reference recomputes the whole sequence for every generated token, one prefix at
a time; both give the same tokens, and log-probabilities equal to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ingest.devices import device_of


@dataclass
class Completion:
    item: int
    prefix_len: int               # k: tokens of the item shown to the model
    tokens: np.ndarray            # [t_s - k] generated ids
    logprobs: np.ndarray          # [t_s - k] log p(generated token | everything before), float64


def _pick(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy token and its log-probability: [rows, vocab] -> ([rows], [rows])."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    tok = logits.argmax(dim=-1)
    lp = torch.log_softmax(logits, dim=-1).gather(-1, tok[:, None])[:, 0]
    return tok, lp


@torch.no_grad()
def unmask_naive(model, items: list[np.ndarray]) -> list[Completion]:
    """Reference: one prefix at a time, the whole sequence recomputed for every new token."""
    dev = device_of(model)
    out = []
    for i, x in enumerate(items):
        for k in range(1, x.size):
            seq = torch.from_numpy(x[:k]).to(dev)[None]                        # [1, pos]
            toks, lps = [], []
            for _ in range(x.size - k):
                tok, lp = _pick(model(input_ids=seq).logits[:, -1])
                toks.append(int(tok[0]))
                lps.append(float(lp[0]))
                seq = torch.cat([seq, tok[:, None]], dim=1)
            out.append(Completion(i, k, np.array(toks, dtype=np.int64), np.array(lps)))
    return out


def _groups(items: list[np.ndarray], max_rows: int) -> list[list[int]]:
    """Consecutive items whose prefixes (t_s - 1 rows each) fit in ``max_rows`` (one at least)."""
    groups, cur, rows = [], [], 0
    for i, x in enumerate(items):
        n = x.size - 1
        if cur and rows + n > max_rows:
            groups.append(cur)
            cur, rows = [], 0
        cur.append(i)
        rows += n
    return groups + ([cur] if cur else [])


@torch.no_grad()
def _unmask_group(model, items: list[np.ndarray], ids: list[int]) -> list[Completion]:
    from transformers import StaticCache

    dev = device_of(model)
    width = max(items[i].size for i in ids) - 1                                # prefill width P
    pre = torch.zeros((len(ids), width), dtype=torch.long)                     # [items, P]
    pre_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, i in enumerate(ids):
        pre[r, :items[i].size - 1] = torch.from_numpy(items[i][:-1])
        pre_mask[r, :items[i].size - 1] = 1
    # slots [0, P) hold the items' tokens, [P, P + longest generation - 1) the generated ones;
    # preallocated and written in place (a growing cache would copy itself every step)
    cache = StaticCache(config=model.config, max_cache_len=2 * width)
    logits = model(input_ids=pre.to(dev), attention_mask=pre_mask.to(dev),
                   past_key_values=cache, use_cache=True).logits              # [items, P, vocab]

    # rows (item, k), most tokens to generate first
    rows = sorted(((r, k, items[i].size - k) for r, i in enumerate(ids) for k in range(1, items[i].size)),
                  key=lambda t: -t[2])
    src = torch.tensor([r for r, _, _ in rows], device=dev)                    # [rows]
    k = torch.tensor([k for _, k, _ in rows], device=dev)                      # [rows]
    n_gen = torch.tensor([n for _, _, n in rows], device=dev)                  # [rows]
    last_pos = k + n_gen - 1                                                   # [rows] = t_s - 1
    tok, lp = _pick(logits[src, k - 1])                                        # [rows]
    del logits
    gen_tok = torch.zeros((len(rows), int(n_gen[0])), dtype=torch.long, device=dev)
    gen_lp = torch.zeros((len(rows), int(n_gen[0])), dtype=torch.float64, device=dev)
    gen_tok[:, 0], gen_lp[:, 0] = tok, lp.double()
    cache.reorder_cache(src)
    slots = torch.arange(2 * width, device=dev)                                # [slots]
    big = torch.finfo(model.dtype).min
    active = len(rows)
    for j in range(1, int(n_gen[0])):
        still = int((n_gen > j).sum())                     # rows are sorted: the first `still`
        if still <= active // 2:                           # shrink by halves: few copies in all
            cache.reorder_cache(torch.arange(still, device=dev))
            active = still
        kk = k[:active]
        allowed = (slots[None] < kk[:, None]) | ((slots[None] >= width) & (slots[None] < width + j))
        mask = torch.zeros(allowed.shape, dtype=model.dtype, device=dev).masked_fill(~allowed, big)
        pos = torch.minimum(kk + j - 1, last_pos[:active])  # finished rows: any valid position
        out = model(input_ids=gen_tok[:active, j - 1:j], position_ids=pos[:, None],
                    attention_mask=mask[:, None, None, :], past_key_values=cache,
                    use_cache=True).logits[:, -1]                              # [rows, vocab]
        tok, lp = _pick(out)
        gen_tok[:active, j], gen_lp[:active, j] = tok, lp.double()
    gen_tok, gen_lp = gen_tok.cpu().numpy(), gen_lp.cpu().numpy()
    return [Completion(ids[r], kk, gen_tok[q, :n], gen_lp[q, :n])
            for q, (r, kk, n) in enumerate(rows)]


def unmask_cached(model, items: list[np.ndarray], max_rows: int = 512) -> list[Completion]:
    """Causal unmasking with a KV cache, all prefixes of up to ``max_rows`` rows batched."""
    out: list[Completion] = []
    for g in _groups(items, max_rows):
        out += _unmask_group(model, items, g)
    return sorted(out, key=lambda c: (c.item, c.prefix_len))
