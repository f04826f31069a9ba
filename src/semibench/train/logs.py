"""Step logs that never make a training step wait for the device.

Every step adds its losses and pseudo-label statistics to float64 sums that stay where the
values are (on the GPU, on the GPU); the trainer reads them once per evaluation. The loss's
finiteness is tracked the same way: the first non-finite step is remembered on the device and
checked whenever the trainer syncs anyway (evaluation, checkpoint, or every ``check_every``
steps), so the guarantee "a NaN stops the run and writes no metrics" costs no sync per step.

Sums are float64 whatever the device, so a run resumed from a checkpoint (which stores the sums
as Python floats) adds exactly the same numbers in the same order as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch

from semibench.errors import SemiBenchError


class NonFiniteLossError(SemiBenchError, FloatingPointError):
    """The loss became NaN or infinite: the run stops and writes no metrics."""


def _as_sum(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    return torch.tensor(float(value), dtype=torch.float64)


class LogSums:
    """Running sums and counts of the step logs since the last evaluation."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor | float] = {}

    def add(self, name: str, value: Any, weight: Any = 1.0) -> None:
        """Add ``value`` with weight 0 or 1: a plain number, or a tensor where validity is
        data-dependent (pseudo-label accuracy in a step where no pseudo-label passed the mask)."""
        value = _as_sum(value)
        if isinstance(weight, torch.Tensor):  # 0 * nan is nan: select, then weigh
            weight = weight.detach().to(value.device, torch.float64)
            value = torch.where(weight > 0, value, torch.zeros_like(value)) * weight
        elif weight == 0:
            return
        # a plain weight of 1 is counted on the host: no op and no copy on the step's path
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts.get(name, 0.0) + weight

    def means(self) -> dict[str, float]:
        """Per-name means (one transfer for all of them); names never counted are left out."""
        if not self.sums:
            return {}
        names = list(self.sums)
        sums = torch.stack([self.sums[n].cpu() for n in names]).tolist()
        counts = [float(self.counts[n]) for n in names]
        return {n: s / c for n, s, c in zip(names, sums, counts, strict=True) if c > 0}

    def state_dict(self) -> dict[str, dict[str, float]]:
        return {"sums": {k: float(v) for k, v in self.sums.items()},
                "counts": {k: float(v) for k, v in self.counts.items()}}

    def load_state_dict(self, state: dict[str, dict[str, float]]) -> None:
        self.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state["sums"].items()}
        self.counts = {k: float(v) for k, v in state["counts"].items()}

    def clear(self) -> None:
        self.sums, self.counts = {}, {}


class FiniteGuard:
    """Remembers, on the device, the first step whose loss was not finite."""

    def __init__(self) -> None:
        self.first_step: torch.Tensor | None = None
        self.first_value: torch.Tensor | None = None

    def observe(self, loss: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        step_t = torch.full((), step, dtype=torch.int64, device=loss.device)
        if self.first_step is None:
            self.first_step = torch.where(bad, step_t, torch.full_like(step_t, -1))
            self.first_value = loss.detach().float().clone()
            return
        new = bad & (self.first_step < 0)
        self.first_step = torch.where(new, step_t, self.first_step)
        self.first_value = torch.where(new, loss.detach().float(), self.first_value)

    def check(self, detail: str = "") -> None:
        """Raise :class:`NonFiniteLossError` if any observed loss was not finite (a sync)."""
        if self.first_step is None:
            return
        step = int(self.first_step)
        if step >= 0:
            value = float(self.first_value)
            raise NonFiniteLossError(
                f"non-finite loss {value} at iteration {step}{detail}; lower train.lr or "
                "check the data")
