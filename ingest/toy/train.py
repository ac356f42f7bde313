"""Train the toy checkpoint suite: small GPT-NeoX models (transformers'
``GPTNeoXForCausalLM``, so Pythia and the toy suite share every code path), seeded and
deterministic (one thread per model, one process per model), saving checkpoints in the
local-directory layout ``<out>/<name>/step<N>/`` on a Pythia-like schedule: log-spaced
steps 0, 1, 2, 4, ... below ``every``, then every ``every`` steps up to ``total``.
``<out>/<name>/suite.json`` records the corpus, schedule, seed and hyperparameters.
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


SUITE = (ToyModel("neox-2l", 2, 64, 2, seed=0), ToyModel("neox-3l", 3, 64, 2, seed=1))


@dataclass(frozen=True)
class TrainSpec:
    total_steps: int = 1536
    every: int = 32
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 64
    weight_decay: float = 0.01
    corpus: CorpusSpec = field(default_factory=CorpusSpec)


def schedule(total: int, every: int) -> list[int]:
    """Pythia-like checkpoint steps: 0 and powers of two below ``every``, then multiples."""
    steps = [0] + [2**i for i in range(int(math.log2(max(every, 1))) + 1) if 2**i < every]
    return sorted(set(steps + list(range(every, total + 1, every))))


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
        use_parallel_residual=True,
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
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < spec.warmup:
            return spec.lr * (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.total_steps - spec.warmup)
        return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    save_at = set(schedule(spec.total_steps, spec.every))
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
