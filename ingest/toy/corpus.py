"""The toy suite's synthetic corpus.

Two kinds of sequence over a small vocabulary:

- *Markov text* (a quarter of the sequences): a first-order Markov chain whose every row is a Zipf distribution over
  its own seeded permutation of the vocabulary, so bigram statistics are learnable early
  and token frequencies are long-tailed like natural text;
- *repeated segments* (three quarters): a uniformly random segment R, its length (the period, 8 to 24)
  drawn per sequence, repeated to the end of the sequence. The period varies, so
  predicting the repeats needs content-based copying (an induction circuit: a
  previous-token head and an induction head), not a fixed positional offset.

The induction transition is measured on held-out sequences ``R R`` (R uniform random,
16 tokens): loss on the second half (from its second token on) is near log(vocab) or
above before induction heads form and far lower after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CorpusSpec:
    vocab_size: int = 256
    seq_len: int = 64
    zipf_s: float = 1.2
    repeat_fraction: float = 0.75
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
        self.transition = np.empty((v, v))  # [from, to]
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
            out[:, t] = (self.cdf[out[:, t - 1]] < u[:, t : t + 1]).sum(axis=1)
        return np.minimum(out, self.spec.vocab_size - 1)

    def periodic(
        self, rng: np.random.Generator, n: int, min_period: int | None = None, max_period: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """[n, seq_len] sequences that repeat a uniform random segment (period drawn per
        sequence) to the end, and the mask of tokens an induction circuit can predict
        (from the second token of the first repeat on)."""
        s = self.spec
        lo, hi = min_period or s.min_segment, max_period or s.max_segment
        x = np.empty((n, s.seq_len), dtype=np.int64)
        mask = np.zeros_like(x, dtype=bool)
        for i in range(n):
            p = int(rng.integers(lo, hi + 1))
            x[i] = np.tile(rng.integers(0, s.vocab_size, size=p), s.seq_len // p + 1)[: s.seq_len]
            mask[i, p + 1 :] = True
        return x, mask

    def batch(
        self,
        rng: np.random.Generator,
        n: int,
        repeat_fraction: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """[n, seq_len] training sequences, Markov text or (a fraction) repeated random
        segments, and the mask of repeat tokens only an induction circuit predicts."""
        frac = self.spec.repeat_fraction if repeat_fraction is None else repeat_fraction
        x, _ = self.markov(rng, n, self.spec.seq_len), None
        mask = np.zeros_like(x, dtype=bool)
        rep = np.flatnonzero(rng.random(n) < frac)
        if rep.size:
            x[rep], mask[rep] = self.periodic(rng, rep.size)
        return x, mask

    def induction(self, rng: np.random.Generator, n: int, half: int = 16) -> np.ndarray:
        """[n, 2 * half] held-out induction prompts: a uniform random segment, then again
        (the default half lies inside the training periods)."""
        seg = rng.integers(0, self.spec.vocab_size, size=(n, half))
        return np.concatenate([seg, seg], axis=1)

    def text(self, rng: np.random.Generator, n: int, length: int | None = None) -> np.ndarray:
        """[n, length] held-out Markov text (evaluation sets)."""
        return self.markov(rng, n, length or self.spec.seq_len)
