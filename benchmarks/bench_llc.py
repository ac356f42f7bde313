"""Cost of the llc probe per checkpoint against the forward+backward passes it is made of.

SGLD is ``chains x (draws + burnin)`` forward+backward passes of one minibatch each, plus,
per chain, ``init_batches`` forward passes for L(w*) (one pass over the data set by default);
nothing beyond that should cost. For each model shape this prints the median seconds of
``ingest.llc.estimate`` with the probe's default hyperparameters (``Sampler()``) on 256
windows of 64 random token ids, the median seconds of one forward+backward pass of one such
minibatch (and of one forward pass), the cost those passes predict, and the ratio of the
measured seconds to the prediction (1.0x: no overhead) and to ``chains x draws`` passes
alone. Shapes: the toy suite's two models (random init, the trained ones have the same
cost) and Pythia-14M's (GPTNeoXConfig, random init, nothing downloaded). One process,
``--threads`` torch threads, the load average printed.

    python benchmarks/bench_llc.py [--models toy-2l,toy-3l,pythia-14m] [--repeats 3] [--draws N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, pythia14m_shaped, timed  # noqa: E402

from ingest.llc import Sampler, estimate  # noqa: E402


def shape(name: str):
    """A randomly initialised GPT-NeoX of the named shape."""
    from transformers import GPTNeoXForCausalLM

    from ingest.toy.train import SUITE, build_config

    if name == "pythia-14m":
        return pythia14m_shaped()
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(build_config({"toy-2l": SUITE[0], "toy-3l": SUITE[1]}[name], 256, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="toy-2l,toy-3l,pythia-14m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=0, help="override the default draws (0: the probe's default)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sampler = Sampler() if not a.draws else Sampler(draws=a.draws)
    n, t_len = 256, 64
    print(
        f"llc defaults: {sampler.chains} chains x {sampler.draws} draws (+{sampler.burnin} burn-in), batch "
        f"{sampler.batch_size} x {t_len} tokens, {n} windows; torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'model':<11}{'params':>10}{'llc s':>9}{'fwd+bwd s':>11}{'fwd s':>9}{'passes s':>10}{'ratio':>8}{'vs c*d':>8}"
    )
    for name in a.models.split(","):
        model = shape(name)
        vocab = model.config.vocab_size
        data = np.random.default_rng(0).integers(0, vocab, size=(n, t_len))
        batch = torch.from_numpy(data[: sampler.batch_size])

        def fwd_bwd():
            model.zero_grad(set_to_none=True)
            model(batch, labels=batch).loss.backward()

        def fwd():
            with torch.no_grad():
                model(batch)

        fwd_bwd(), fwd()  # warm-up
        t_fb, t_f = timed(fwd_bwd, max(5, a.repeats))[0], timed(fwd, max(5, a.repeats))[0]
        model.zero_grad(set_to_none=True)
        estimate(model, data, Sampler(chains=1, draws=2, batch_size=sampler.batch_size))  # warm-up (imports)
        t_llc = timed(lambda: estimate(model, data, sampler), a.repeats)[0]
        steps = sampler.chains * (sampler.draws + sampler.burnin)
        init = sampler.chains * (sampler.init_batches or n // sampler.batch_size)
        passes = steps * t_fb + init * t_f
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:<11}{params:>10,}{t_llc:>9.2f}{t_fb:>11.4f}{t_f:>9.4f}{passes:>10.2f}"
            f"{t_llc / passes:>7.2f}x{t_llc / (steps * t_fb):>7.2f}x"
        )
    print("ratio: llc seconds / (SGLD steps x fwd+bwd + L(w*) batches x fwd); vs c*d: / (chains x draws x fwd+bwd)")
    print(load_average())


if __name__ == "__main__":
    main()
