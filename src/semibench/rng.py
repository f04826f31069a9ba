"""Counter-based random streams: a generator per (seed, stream, step), so that any step's draws
can be made again without replaying the ones before (exact resume, prefetching, whole-data
passes of a method). The bottom layer: the trainer and the methods both draw from it."""

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
