"""Stateless batch sampling: the indices of step k depend only on (seed, stream, k), so a run
resumed from a checkpoint sees exactly the batches it would have seen."""

from __future__ import annotations

import torch

#: ``torch.Generator.manual_seed`` takes [-2**63, 2**64) and keeps a seed modulo 2**64
SEED_MODULUS = 2**64


def step_generator(seed: int, stream: int, step: int) -> torch.Generator:
    """A generator for one (seed, stream, step); streams separate independent uses.

    The combined seed is reduced modulo 2**64 as torch itself reduces a negative one, so every
    (seed, stream, step) that torch took before gets the same generator, and a seed of
    1,844,666 or more (whose combined seed is 2**64 or more) no longer overflows."""
    return torch.Generator().manual_seed(
        ((seed * 1_000_003 + stream) * 10_000_019 + step) % SEED_MODULUS
    )


class BatchSampler:
    """Draws batches from a pool by walking an endless sequence of random permutations (every
    sample is seen once per pass; the last batch of a pass continues into the next)."""

    def __init__(self, pool: torch.Tensor, batch_size: int, seed: int, stream: int):
        self.pool = pool
        self.batch_size = batch_size
        self.seed = seed
        self.stream = stream
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            self._cache = {epoch: torch.randperm(
                len(self.pool), generator=step_generator(self.seed, self.stream, epoch)
            ), **{e: p for e, p in self._cache.items() if e == epoch - 1}}
        return self._cache[epoch]

    def batch(self, step: int) -> torch.Tensor:
        n = len(self.pool)
        start = step * self.batch_size
        positions = torch.arange(start, start + self.batch_size)
        parts = [self._perm(int(e))[positions[positions // n == e] % n]
                 for e in torch.unique(positions // n)]
        return self.pool[torch.cat(parts)]
