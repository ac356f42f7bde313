"""Perplexity probe (METHODS §B, eq. 6; Nicolini et al. 2024 §4.2).

Per checkpoint and evaluation set (``ingest.evalsets``), two methods, one row each in
``raw.perplexity``:

- ``forward``: teacher-forced; perplexity = exp(Σ NLL / Σ predicted tokens) over every item
  (tokens 2..T of each item are predicted; token-weighted, i.e. the corpus perplexity);
- ``causal_unmasking``: every prefix of the first ``unmasking_items`` items completed
  greedily to the item's length; perplexity of the *generated* tokens =
  exp(−mean log p(generated)) over all of them (the paper's Figure 6).

The forward NLL is computed from the final hidden states of the scored positions only
(tokens 1..T-1 of each item, no padding): the unembedding, which dominates a small model
with a large vocabulary, is applied in blocks of positions x vocabulary rows small enough
for the cache, and the loss needs only each position's log-sum-exp (accumulated over the
vocabulary blocks) and its target's logit, so the [batch, pos, vocab] logits of
``model(...).logits`` are never formed (models whose logits are transformed after the
unembedding, such as soft-capped ones, use their own logits).

Per item (and prefix) rows go to ``raw.perplexity_items`` (with the generated ids when
``store_generations``), so a per-sentence mean or any other aggregate is a query. The
evaluation set's ids and hash go to ``raw.eval_sets`` with every checkpoint's job (the
rows repeat per checkpoint so that a job owns its slice; staging deduplicates them).

A checkpoint whose weights are not finite yields non-finite NLLs: those items are counted
in ``n_nonfinite``, left out of the aggregate, and the aggregate is NULL when none is left.
Parameters: ``eval_set`` (``toy`` or a file, see ``ingest.evalsets``), ``dataset`` (its
name in the marts; default derived), ``n_items``/``item_len``/``eval_seed`` (the toy set),
``max_items`` (first items only; 0 = all), ``methods``, ``unmasking_items`` (items given
to causal unmasking; 0 = all), ``batch_size`` (forward; ``auto``: from free memory; halved on out-of-memory), ``max_rows`` (prefix rows per
generation batch), ``store_generations`` (keep the generated ids).
Runs on ``device`` (``auto``: CUDA when available), in ``dtype``. On CPU, torch runs with
``cpu_threads`` intra-op threads during the probe (restored after; 0 leaves torch's
setting): the toy models' matrices are too small to gain from threads, and extra threads
spinning on a shared machine made the probe 10-30x slower in measurements here.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ingest import devices
from ingest.errors import TdwError
from ingest.evalsets import EvalSet, eval_set_for
from ingest.probes.base import Probe, Progress, TableSpec, between, finite
from ingest.probes.unmasking import unmask_cached
from ingest.sources import Checkpoint

METHODS = ("forward", "causal_unmasking")
LOGIT_CHUNK = 1 << 18           # float32 logits held at once by the blocked loss (1 MB)
VOCAB_BLOCK = 1024              # unembedding rows per block (512 KB at d_model 128)
# config fields that change logits after the unembedding: with any set, use the model's own logits
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_mult")
_K = ("model_id", "step", "dataset", "method")


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch intra-op threads (0: unchanged), restoring the setting after."""
    import torch
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def aggregate(nll_sums: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """Token-weighted perplexity over the finite items; non-finite ones counted, not used."""
    ok = np.isfinite(nll_sums)
    n_tok = int(counts[ok].sum())
    nll = float(nll_sums[ok].sum())
    mean = nll / n_tok if n_tok else None
    return {"n_items": int(ok.sum()), "n_nonfinite": int((~ok).sum()), "n_tokens": n_tok,
            "nll_sum": nll if n_tok else None, "mean_nll": mean,
            "perplexity": math.exp(min(mean, 700.0)) if mean is not None else None}


def _body_and_head(model):
    """(decoder body, unembedding) when the logits are exactly ``head(body(x).last_hidden_state)``;
    None otherwise (the model's own forward is used then)."""
    import torch
    head, body = model.get_output_embeddings(), getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or body is None or body is model:
        return None
    if any(getattr(model.config, a, None) not in (None, 1, 1.0) for a in _LOGIT_TRANSFORMS):
        return None
    return body, head


def _token_nll(hidden, head, targets):
    """NLL of each target given its final hidden state, blocked for the cache: for a block
    of positions, the logits of one block of ``VOCAB_BLOCK`` vocabulary rows at a time
    (``LOGIT_CHUNK`` float32 values at most, with the block of the unembedding they need
    staying in cache), folded into a running log-sum-exp (running max, rescaled sum); the
    target's logit is the dot product of its hidden state and unembedding row.
    hidden [rows, d_model], targets [rows] -> [rows]."""
    import torch
    weight, bias = head.weight, head.bias                                # [vocab, d_model], [vocab]
    vocab = weight.shape[0]
    wide = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    vb = min(vocab, VOCAB_BLOCK)
    rows = max(1, LOGIT_CHUNK // vb)
    target = (hidden * weight[targets]).to(wide).sum(-1)                  # [rows]
    if bias is not None:
        target = target + bias[targets].to(wide)
    out = torch.empty(targets.shape, dtype=wide, device=hidden.device)
    for i in range(0, targets.numel(), rows):
        h = hidden[i:i + rows]                                           # [chunk, d_model]
        top = torch.full((h.shape[0],), -torch.inf, dtype=wide, device=h.device)
        total = torch.zeros((h.shape[0],), dtype=wide, device=h.device)
        for v in range(0, vocab, vb):
            z = torch.nn.functional.linear(h, weight[v:v + vb],
                                           None if bias is None else bias[v:v + vb]).to(wide)  # [chunk, vb]
            new = torch.maximum(top, z.amax(dim=1))
            total = total * torch.exp(top - new) + torch.exp(z - new[:, None]).sum(dim=1)
            top = new
        out[i:i + rows] = top + torch.log(total) - target[i:i + rows]
    return out


def forward_nll(model, items: list[np.ndarray], batch_size: int | str = 16) -> list[tuple[float, int]]:
    """Per item: (sum of NLL of tokens 2..T given their prefix, T - 1), batched with right
    padding. Only the scored positions reach the unembedding, in chunks (``_token_nll``):
    the full [batch, pos, vocab] logits are never formed. The batch size adapts to memory
    (``ingest.batching``): ``auto`` starts from free memory, and a batch that runs out of
    memory is split."""
    import torch

    from ingest.batching import adaptive_map, forward_bytes, initial
    dev = devices.device_of(model)
    order = sorted(range(len(items)), key=lambda i: -items[i].size)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(items)
    cfg = model.config
    split = _body_and_head(model)
    width0 = items[order[0]].size if items else 1
    start_size = initial(batch_size, forward_bytes(width0, cfg.hidden_size, cfg.num_hidden_layers,
                                                    cfg.vocab_size, logits=split is None), str(dev))

    def run(b: int, e: int) -> None:
        idx = order[b:e]
        width = items[idx[0]].size
        ids = torch.zeros((len(idx), width), dtype=torch.long)                 # [batch, pos]
        mask = torch.zeros((len(idx), width), dtype=torch.long)                # [batch, pos]
        for r, i in enumerate(idx):
            ids[r, :items[i].size] = torch.from_numpy(items[i])
            mask[r, :items[i].size] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        scored = mask[:, 1:].bool()                                            # [batch, pos-1]
        if split is not None:
            body, head = split
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state   # [batch, pos, d]
            nll = _token_nll(hidden[:, :-1][scored], head, ids[:, 1:][scored])    # [scored]
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][scored]  # [scored, vocab]
            nll = _token_nll_from_logits(logits, ids[:, 1:][scored])
        row = torch.arange(len(idx), device=dev)[:, None].expand_as(scored)[scored]
        sums = torch.zeros(len(idx), dtype=torch.float64, device=dev).index_add_(0, row, nll.double())
        sums = sums.cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = (float(sums[r]), int(items[i].size - 1))

    with torch.no_grad():
        adaptive_map(len(order), start_size, run,
                     key=("forward_nll", cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, str(dev)))
    return out


def _token_nll_from_logits(logits, targets):
    """The same NLL from logits the model computed itself ([rows, vocab] -> [rows])."""
    import torch
    logits = logits if logits.dtype == torch.float64 else logits.float()
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None])[:, 0]


class PerplexityProbe(Probe):
    name = "perplexity"
    runs_model = True
    version = "1"
    defaults = {
        "eval_set": "toy", "dataset": "", "n_items": 32, "item_len": 0, "eval_seed": 20240,
        "max_items": 0, "methods": "forward,causal_unmasking", "unmasking_items": 2,
        "batch_size": 16, "max_rows": 512, "store_generations": True,
        "device": "auto", "dtype": "float32", "cpu_threads": 1,
    }
    tables = (
        TableSpec("perplexity", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("dataset", "VARCHAR"), ("method", "VARCHAR"),
            ("eval_hash", "VARCHAR"), ("n_items", "BIGINT"), ("n_nonfinite", "BIGINT"),
            ("n_tokens", "BIGINT"), ("nll_sum", "DOUBLE"), ("mean_nll", "DOUBLE"),
            ("perplexity", "DOUBLE"),
        ), _K, ("dataset", "method"), "Perplexity of one evaluation set at one checkpoint, per method.",
            # aggregates over the finite items only (NULL when none is left)
            (between("n_items", 0), between("n_nonfinite", 0), between("n_tokens", 0),
             finite("nll_sum"), finite("mean_nll"), finite("perplexity", 0, strict=True))),
        TableSpec("perplexity_items", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("dataset", "VARCHAR"), ("method", "VARCHAR"),
            ("item", "INTEGER"), ("prefix_len", "INTEGER"), ("n_tokens", "INTEGER"),
            ("nll_sum", "DOUBLE"), ("generated", "INTEGER[]"),
        ), _K + ("item", "prefix_len"), ("dataset", "method"),
            "Per item (forward: prefix_len 0, tokens 2..T scored) or per item and prefix length "
            "(causal_unmasking: the generated tokens, their NLL).",
            (between("item", 0), between("prefix_len", 0), between("n_tokens", 0))),   # nll_sum may be non-finite
        TableSpec("eval_sets", (
            ("model_id", "VARCHAR"), ("step", "BIGINT"), ("dataset", "VARCHAR"), ("eval_hash", "VARCHAR"),
            ("spec", "VARCHAR"), ("item", "INTEGER"), ("n_tokens", "INTEGER"), ("token_ids", "INTEGER[]"),
        ), ("model_id", "step", "dataset", "item"), ("dataset",),
            "The evaluation set's token ids (repeated per checkpoint so a job owns its rows).",
            (between("item", 0), between("n_tokens", 1))),
    )

    def _methods(self, params: dict[str, Any]) -> list[str]:
        ms = [m.strip() for m in str(params["methods"]).split(",") if m.strip()]
        bad = [m for m in ms if m not in METHODS]
        if bad or not ms:
            raise TdwError(f"unknown perplexity method(s) {', '.join(bad) or '(none)'}; "
                           f"choose from {', '.join(METHODS)}")
        return ms

    def validate(self, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        self._methods(params)
        devices.resolve_device(str(params["device"]))
        devices.torch_dtype(str(params["dtype"]))
        if str(params["batch_size"]) != "auto" and int(params["batch_size"]) < 1:
            raise TdwError("perplexity parameter batch_size must be >= 1 or auto")
        if int(params["max_rows"]) < 1:
            raise TdwError("perplexity parameter max_rows must be >= 1")
        eval_set_for(checkpoint, params)

    def context(self, source, steps: list[int], params: dict[str, Any]) -> dict[str, Any]:
        return {"eval_set": eval_set_for(source.checkpoint(steps[0]), params)} if steps else {}

    def run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        with torch_threads(int(params["cpu_threads"])):
            return self._run(checkpoint, params, context, progress)

    def _run(self, checkpoint: Checkpoint, params: dict[str, Any], context: dict[str, Any],
             progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        import torch

        es: EvalSet = context.get("eval_set") or eval_set_for(checkpoint, params)
        methods = self._methods(params)
        model = devices.load(checkpoint, params)
        key = {"model_id": checkpoint.model_id, "step": checkpoint.step, "dataset": es.name}
        summary, item_rows = [], []
        items = list(es.items)
        if "forward" in methods:
            if progress:
                progress("forward")
            res = forward_nll(model, items, params["batch_size"])
            nll, cnt = np.array([r[0] for r in res]), np.array([r[1] for r in res])
            summary.append({**key, "method": "forward", "eval_hash": es.hash, **aggregate(nll, cnt)})
            item_rows += [{**key, "method": "forward", "item": i, "prefix_len": 0, "n_tokens": c,
                           "nll_sum": v, "generated": None} for i, (v, c) in enumerate(res)]
        if "causal_unmasking" in methods:
            if progress:
                progress("causal_unmasking")
            n = int(params["unmasking_items"]) or len(items)
            comps = unmask_cached(model, items[:n], int(params["max_rows"]))
            nll = np.array([-c.logprobs.sum() for c in comps])
            cnt = np.array([c.tokens.size for c in comps])
            summary.append({**key, "method": "causal_unmasking", "eval_hash": es.hash,
                            **aggregate(nll, cnt)})
            store = bool(params["store_generations"])
            item_rows += [{**key, "method": "causal_unmasking", "item": c.item, "prefix_len": c.prefix_len,
                           "n_tokens": int(c.tokens.size), "nll_sum": float(v),
                           "generated": c.tokens.astype(np.int32) if store else None}
                          for c, v in zip(comps, nll)]
        del model
        cols = {t.name: t.column_names for t in self.tables}
        evals = pd.DataFrame([{"model_id": checkpoint.model_id, "step": checkpoint.step, "dataset": es.name,
                               "eval_hash": es.hash, "spec": es.spec, "item": i, "n_tokens": int(x.size),
                               "token_ids": x.astype(np.int32)} for i, x in enumerate(es.items)])
        return {
            "perplexity": pd.DataFrame(summary)[cols["perplexity"]],
            "perplexity_items": pd.DataFrame(item_rows)[cols["perplexity_items"]],
            "eval_sets": evals[cols["eval_sets"]],
        }
