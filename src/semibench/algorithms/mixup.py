"""Mixup as MixMatch and ReMixMatch use it, written once.

    lambda ~ Beta(alpha, alpha);  lambda = max(lambda, 1 - lambda)   (the mix stays nearer its own
                                                                      sample, "is_bias" in USB)
    perm   = one random permutation of the whole concatenation (labelled and unlabelled)
    mixed  = lambda * z + (1 - lambda) * z[perm]     for inputs z and, identically, for targets

``z`` is either the raw inputs (input mixup, images) or the backbone's pooled features (manifold
mixup: USB's ``mixup_manifold=True`` for text and audio; the mixed features then go through the
head only). Targets are mixed with the same ``Mixing``, so the algorithm can mix its label
guesses after the forward pass.

The mixed batch is forwarded in chunks of the labelled batch size: the first chunk updates
batch-norm running statistics and the others run with them frozen. ``interleave`` first swaps
slices between chunks so that the statistics-updating chunk holds a share of every chunk
(MixMatch's interleaving), and swaps them back afterwards.

Randomness: lambda and the permutation come from an explicit ``torch.Generator`` or, when none
is given, the torch global RNG, which the trainer reseeds every step (so runs are reproducible
and resume exactly). Both are drawn on the CPU, so they do not depend on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semibench.algorithms.base import Outputs
from semibench.algorithms.bn import bn_frozen


@dataclass
class Mixing:
    """One mixup draw: the weight of each sample itself and its partner permutation."""

    lam: float
    perm: torch.Tensor

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """lam * z + (1 - lam) * z[perm] along the first dimension."""
        if len(z) != len(self.perm):
            raise ValueError(f"mixup drawn for {len(self.perm)} samples, got {len(z)}")
        return self.lam * z + (1.0 - self.lam) * z[self.perm.to(z.device)]


def sample_mixing(n: int, alpha: float, generator: torch.Generator | None = None) -> Mixing:
    """Draw lambda ~ Beta(alpha, alpha), keep max(lambda, 1 - lambda), and a permutation of n.

    torch's Beta sampler cannot take a generator, so a seed is drawn from the torch RNG (the
    given generator or the global one) and numpy samples the Beta variate from it."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha={alpha}: must be > 0")
    # a CPU draw read without .item(): nothing here waits for an accelerator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).numpy()[0])
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(n, generator=generator)
    return Mixing(lam=lam, perm=perm)


def _group_offsets(batch: int, groups: int) -> list[int]:
    """Split ``batch`` rows into ``groups`` near-equal slices (the larger ones last)."""
    sizes = [batch // groups] * groups
    for i in range(batch - sum(sizes)):
        sizes[groups - 1 - i] += 1
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    return offsets


def interleave(chunks: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Swap slice i of chunk 0 with slice i of chunk i (each chunk cut into ``len(chunks)``
    slices of ``batch`` rows). Applying it twice gives the chunks back."""
    if any(len(c) != batch for c in chunks):
        raise ValueError(f"interleave needs chunks of {batch} rows, got {[len(c) for c in chunks]}")
    k = len(chunks)
    off = _group_offsets(batch, k)
    pieces = [[c[off[g] : off[g + 1]] for g in range(k)] for c in chunks]
    for i in range(1, k):
        pieces[0][i], pieces[i][i] = pieces[i][i], pieces[0][i]
    return [torch.cat(p) for p in pieces]


def forward_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, mixed: torch.Tensor, batch: int
) -> torch.Tensor:
    """``fn`` on ``mixed`` in chunks of ``batch`` rows, interleaved: the first chunk updates the
    batch-norm statistics of ``model``, the rest run with them frozen. Rows come back in order."""
    if len(mixed) % batch:
        raise ValueError(f"{len(mixed)} mixed rows do not split into chunks of {batch}")
    chunks = interleave(list(mixed.split(batch)), batch)
    outs = [fn(chunks[0])]
    with bn_frozen(model):
        outs.extend(fn(c) for c in chunks[1:])
    return torch.cat(interleave(outs, batch))


def mixup_forward(
    model: nn.Module, parts: list[torch.Tensor], alpha: float, manifold: bool, batch: int
) -> tuple[torch.Tensor, Mixing]:
    """Mix the concatenated ``parts`` (inputs, or pooled features when ``manifold``, which then
    go through ``model.forward_head`` only) and forward them in interleaved chunks of ``batch``
    rows; returns the logits of the mixed rows, in order, and the mixup draw."""
    z = torch.cat(parts)
    mixing = sample_mixing(len(z), alpha)
    fn = model.forward_head if manifold else model
    return forward_chunks(fn, model, mixing.apply(z), batch), mixing


@dataclass
class MixedOutputs(Outputs):
    """Outputs plus the mixup draw, so that targets can be mixed like the inputs were."""

    mixing: Mixing | None = None


def mixing_of(out: Outputs) -> Mixing:
    """The mixup draw of ``out``; these algorithms need their own ``forward``'s outputs."""
    if not isinstance(out, MixedOutputs) or out.mixing is None:
        raise TypeError("mixup algorithms need the MixedOutputs of their own forward()")
    return out.mixing


def check_float_inputs(x: torch.Tensor, name: str) -> None:
    """Input mixup interpolates inputs: token ids (or any integer input) cannot be mixed."""
    if not torch.is_floating_point(x):
        raise ValueError(
            f"algorithm_params.{name}.mixup_manifold=False: input mixup needs float inputs, got "
            f"{x.dtype}; use mixup_manifold=True (mix the pooled features)"
        )
