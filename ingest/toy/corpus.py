"""The toy suite's synthetic corpus.

Two kinds of sequence, mixed half and half, over a small vocabulary:

- *Markov text*: a first-order Markov chain whose every row is a Zipf distribution over
  its own seeded permutation of the vocabulary, so bigram statistics are learnable early
  and token frequencies are long-tailed like natural text;
- *repeated segments*: Markov text with a uniformly random segment R (length 8 to 24)
  inserted and, right after it, R again. Its offset varies, so predicting the repeat needs
  content-based copying (an induction circuit), not a fixed positional offset.

The induction transition is measured on held-out sequences ``R R`` (R uniform random,
length ``seq_len // 2``): loss on the second half (from its second token on) is near
log(vocab) before induction heads form and far lower after.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CorpusSpec:
    vocab_size: int = 256
    seq_len: int = 64
    zipf_s: float = 1.2
    repeat_fraction: float = 0.5
    min_segment: int = 8
    max_segment: int = 24
    seed: int = 1234

    def to_dict(self) -> dict:
        return asdict(self)


class Corpus:
    def __init__(self, spec: CorpusSpec):
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        v = spec.vocab_size
        ranks = np.arange(1, v + 1, dtype=np.float64) ** -spec.zipf_s
        ranks /= ranks.sum()
        self.transition = np.empty((v, v))                      # [from, to]
        for i in range(v):
            self.transition[i, rng.permutation(v)] = ranks
        self.cdf = np.cumsum(self.transition, axis=1)
        self.start = ranks[rng.permutation(v)]

    def markov(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """[n, length] Markov-chain token ids."""
        out = np.empty((n, length), dtype=np.int64)
        out[:, 0] = rng.choice(self.spec.vocab_size, size=n, p=self.start)
        u = rng.random((n, length))
        for t in range(1, length):
            out[:, t] = (self.cdf[out[:, t - 1]] < u[:, t:t + 1]).sum(axis=1)
        return np.minimum(out, self.spec.vocab_size - 1)

    def batch(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """[n, seq_len] training sequences: Markov text, half of them with a repeated segment."""
        s = self.spec
        x = self.markov(rng, n, s.seq_len)
        for i in np.flatnonzero(rng.random(n) < s.repeat_fraction):
            length = int(rng.integers(s.min_segment, s.max_segment + 1))
            start = int(rng.integers(1, s.seq_len - 2 * length + 1))
            seg = rng.integers(0, s.vocab_size, size=length)
            x[i, start:start + length] = seg
            x[i, start + length:start + 2 * length] = seg
        return x

    def induction(self, rng: np.random.Generator, n: int, half: int | None = None) -> np.ndarray:
        """[n, 2 * half] held-out induction prompts: a uniform random segment, then again."""
        half = half or self.spec.seq_len // 2
        seg = rng.integers(0, self.spec.vocab_size, size=(n, half))
        return np.concatenate([seg, seg], axis=1)

    def text(self, rng: np.random.Generator, n: int, length: int | None = None) -> np.ndarray:
        """[n, length] held-out Markov text (evaluation sets)."""
        return self.markov(rng, n, length or self.spec.seq_len)
