"""Train the toy checkpoint suite: small GPT-NeoX models (transformers'
``GPTNeoXForCausalLM``, so Pythia and the toy suite share every code path), seeded and
deterministic (one thread per model, one process per model), saving checkpoints in the
local-directory layout ``<out>/<name>/step<N>/``. ``<out>/<name>/suite.json`` records the
corpus, schedule, seed and hyperparameters.

The schedule is Pythia-like and dense where the toy changes: log-spaced steps 0, 1, 2, 4, ...
(powers of two up to ``total_steps``), and every ``every`` steps inside ``dense`` (default:
from ``every`` to the end). The default run (1024 steps, every 32) brackets each model's
induction transition (the held-out ``R R`` loss of the capability probe falling from
~log(vocab), near steps 400 and 450 with the default corpus) by checkpoints 32 steps apart and
ends long after it, so what follows the transition can be seen. A longer run can keep the
checkpoints dense across the transition only (``dense``) and log-spaced after it.

``ToyModel.parallel_residual=False`` builds GPT-NeoX with a sequential residual (attention,
then an MLP that reads it: 2L + 1 residual sample points instead of L + 1); ``ToyModel.lr``
overrides the peak learning rate per model.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ingest.toy.corpus import Corpus, CorpusSpec


@dataclass(frozen=True)
class ToyModel:
    name: str
    layers: int
    d_model: int
    heads: int
    seed: int
    parallel_residual: bool = True  # GPT-NeoX's default; False: attention, then MLP
    lr: float | None = None  # peak learning rate; None: the TrainSpec's


SUITE = (ToyModel("neox-2l", 2, 64, 2, seed=0), ToyModel("neox-3l", 3, 64, 2, seed=1))


@dataclass(frozen=True)
class TrainSpec:
    total_steps: int = 1024
    every: int = 32
    dense: tuple[int, int] | None = None  # steps saved every `every`; None: every..total
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 64
    weight_decay: float = 0.01
    corpus: CorpusSpec = field(default_factory=CorpusSpec)


def schedule(total: int, every: int, dense: tuple[int, int] | None = None) -> list[int]:
    """Checkpoint steps: 0, the powers of two up to ``total``, the multiples of ``every``
    inside ``dense`` (default: from ``every`` to ``total``, Pythia's log-then-linear
    schedule), and ``total``."""
    lo, hi = dense or (every, total)
    logs = [0] + [2**i for i in range(int(math.log2(max(total, 1))) + 1)]
    first = -(-max(lo, 1) // every) * every
    return sorted({s for s in logs if s <= total} | set(range(first, min(hi, total) + 1, every)) | {total})


def build_config(m: ToyModel, vocab: int, ctx: int):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=m.d_model,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=4 * m.d_model,
        max_position_embeddings=ctx,
        rotary_pct=1.0,
        use_parallel_residual=m.parallel_residual,
        tie_word_embeddings=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )


def _train_one(m: ToyModel, spec: TrainSpec, out: Path, queue) -> dict:
    import torch
    from transformers import GPTNeoXForCausalLM

    torch.set_num_threads(1)
    torch.manual_seed(m.seed)
    corpus = Corpus(spec.corpus)
    rng = np.random.default_rng(spec.corpus.seed + 1000 * (m.seed + 1))
    model = GPTNeoXForCausalLM(build_config(m, spec.corpus.vocab_size, spec.corpus.seq_len))
    peak = m.lr or spec.lr
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=spec.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < spec.warmup:
            return peak * (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.total_steps - spec.warmup)
        return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    save_at = set(schedule(spec.total_steps, spec.every, spec.dense))
    folder = out / m.name
    losses = {}
    history: list[dict] = []
    model.train()
    for step in range(spec.total_steps + 1):
        if step in save_at:
            model.save_pretrained(folder / f"step{step}")
            _write_log(folder / f"step{step}", step, history)
        if step == spec.total_steps:
            break
        x = torch.from_numpy(corpus.batch(rng, spec.batch_size)[0])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step + 1, "loss": float(loss.detach()), "learning_rate": lr_at(step)})
        if step % spec.every == 0:
            losses[step] = float(loss.detach())
        if queue is not None:
            queue.put(1)
    meta = {
        "model": asdict(m),
        "train": {k: v for k, v in asdict(spec).items() if k != "corpus"},
        "corpus": spec.corpus.to_dict(),
        "schedule": sorted(save_at),
        "train_loss": losses,
    }
    (folder / "suite.json").write_text(json.dumps(meta, indent=1))
    return meta


def _write_log(folder: Path, step: int, history: list[dict]) -> None:
    """The log so far, in the Trainer's trainer_state.json format (ingest.traininglog): record
    ``step`` k is the loss of the k-th optimiser update, at the learning rate it used."""
    from ingest.traininglog import write_state

    write_state(folder, step, list(history))


def _worker(args):
    m, spec, out, queue = args
    return _train_one(m, spec, out, queue)


def train_suite(out: Path, spec: TrainSpec | None = None, models=SUITE, progress: bool = True) -> list[dict]:
    """Train every toy model, one process each, and return their suite.json records."""
    import shutil

    from tqdm import tqdm

    spec = spec or TrainSpec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for m in models:  # a rerun replaces the suite, never mixes two runs' checkpoints
        shutil.rmtree(out / m.name, ignore_errors=True)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        queue = manager.Queue()
        with ctx.Pool(len(models)) as pool:
            result = pool.map_async(_worker, [(m, spec, out, queue) for m in models])
            bar = tqdm(total=spec.total_steps * len(models), desc="toy-suite", unit="step", disable=not progress)
            while not result.ready() or not queue.empty():
                while not queue.empty():
                    bar.update(queue.get())
                time.sleep(0.05)
            bar.close()
            return result.get()
