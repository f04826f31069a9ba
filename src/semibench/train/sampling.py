"""Stateless batch sampling: the indices of step k depend only on (seed, stream, k), so a run
resumed from a checkpoint sees exactly the batches it would have seen."""

from __future__ import annotations

import torch

from semibench.rng import SEED_MODULUS, step_generator

__all__ = ["SEED_MODULUS", "BatchSampler", "step_generator"]


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
