"""Distribution alignment (ReMixMatch, AdaMatch, SoftMatch, SimMatch, CoMatch): rescale the
unlabelled predictions by p_target / p_model, where p_model tracks the model's mean prediction.
State is kept in tensors so that it is checkpointed and restored exactly."""

from __future__ import annotations

import torch


def _normalise(p: torch.Tensor) -> torch.Tensor:
    return p / p.sum(dim=-1, keepdim=True)


class DistAlignEMA:
    """p_model = EMA of the batch-mean prediction (the first batch initialises it);
    p_target is uniform, the labelled class distribution ("gt", fixed) or an EMA of the
    labelled batch-mean prediction ("model", AdaMatch)."""

    def __init__(self, num_classes: int, momentum: float = 0.999, target: str = "uniform",
                 lb_class_dist: torch.Tensor | None = None):
        if target not in ("uniform", "gt", "model"):
            raise ValueError(f"target={target!r}; allowed: gt, model, uniform")
        self.momentum, self.target = momentum, target
        if target == "gt":
            if lb_class_dist is None:
                raise ValueError("target='gt' needs the labelled class distribution")
            p_target = _normalise(lb_class_dist.float())
        else:
            p_target = torch.full((num_classes,), 1.0 / num_classes)
        self.p_target = p_target
        self.p_model: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, probs_lb: torch.Tensor | None = None) -> torch.Tensor:
        mean = probs.detach().float().mean(dim=0)
        self.p_target = self.p_target.to(probs.device)
        if self.p_model is None:
            self.p_model = mean
        else:
            self.p_model = self.momentum * self.p_model.to(probs.device) + (1 - self.momentum) * mean
        if self.target == "model":
            if probs_lb is None:
                raise ValueError("target='model' needs the labelled predictions")
            lb_mean = probs_lb.detach().float().mean(dim=0)
            self.p_target = self.momentum * self.p_target + (1 - self.momentum) * lb_mean
        return _normalise(probs * (self.p_target + 1e-6) / (self.p_model + 1e-6))

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"p_target": self.p_target, "p_model": self.p_model}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.p_target, self.p_model = state["p_target"], state["p_model"]


class DistAlignQueue:
    """p_model = mean of the last ``length`` batch-mean predictions (SimMatch, CoMatch); the
    target is uniform."""

    def __init__(self, num_classes: int, length: int = 32):
        self.queue = torch.zeros(length, num_classes)
        self.count = 0  # entries written so far: a host-side count, no wait for the device
        self.p_target = torch.full((num_classes,), 1.0 / num_classes)

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        self.queue = self.queue.to(probs.device)
        self.queue[self.count % len(self.queue)] = probs.detach().float().mean(dim=0)
        self.count += 1
        p_model = self.queue[: min(self.count, len(self.queue))].mean(dim=0)
        target = self.p_target.to(probs.device)
        return _normalise(probs * (target + 1e-6) / (p_model + 1e-6))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"queue": self.queue, "filled": torch.tensor(self.count)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.queue, self.count = state["queue"], int(state["filled"])
