"""Adaptive confidence thresholds and soft weights shared by the FixMatch family, written once.

- ``FlexMatchThresholds``: curriculum per-class thresholds from how many unlabelled samples
  each class has confidently claimed (FlexMatch, Zhang et al., NeurIPS 2021).
- ``FreeMatchThresholds``: a self-adaptive global threshold (EMA of the confidence) scaled per
  class by the EMA class prediction (FreeMatch, Wang et al., ICLR 2023).
- ``TruncatedGaussianWeights``: a soft mask, 1 above the EMA mean confidence and a Gaussian
  tail below it (SoftMatch, Chen et al., ICLR 2023).

All running state lives in tensors returned by ``state_dict`` (loadable with
``torch.load(weights_only=True)``) and is moved lazily to the device of the predictions, so a
resumed run continues exactly. Every update runs under ``no_grad``: thresholds are targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: FlexMatch's threshold mappings M(beta) (paper, Table 6); USB uses "convex"
MAPPINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "convex": lambda beta: beta / (2.0 - beta),
    "linear": lambda beta: beta,
    "concave": lambda beta: torch.log1p(beta) / math.log(2.0),
}


def _load(owner: object, state: dict[str, torch.Tensor], names: tuple[str, ...]) -> None:
    """Restore ``names`` from ``state``, refusing missing keys or a different shape (e.g. a
    checkpoint of another class count or of the per-class variant)."""
    if set(state) != set(names):
        raise ValueError(f"{type(owner).__name__}: checkpoint holds {sorted(state)}, "
                         f"expected {sorted(names)}")
    for name in names:
        current, saved = getattr(owner, name), state[name]
        if current.shape != saved.shape:
            raise ValueError(f"{type(owner).__name__}.{name}: checkpoint shape "
                             f"{tuple(saved.shape)} != {tuple(current.shape)}")
        setattr(owner, name, saved.clone().to(current.dtype))


class FlexMatchThresholds:
    """Curriculum pseudo-labelling: class c's threshold is ``p_cutoff * M(beta_c)``.

    ``selected_label[i]`` is the class unlabelled sample i was last confidently (max p >=
    p_cutoff) predicted as, -1 if never; sigma_c counts the samples selected as c and
    ``beta_c = sigma_c / max(sigma_1..sigma_C, sigma_unused)`` with ``thresh_warmup`` (the
    never-selected count competes, so thresholds rise slowly at first), ``/ max(sigma_1..C)``
    without. beta starts at 0, so early in training every sample passes (threshold 0).

    Intent over USB: USB recomputes beta only while ``max(counter) < num_ulb``, so it silently
    stops updating once every sample is assigned to one class; here beta is recomputed
    whenever any sample has been selected.
    """

    names = ("selected_label", "classwise_acc")

    def __init__(self, num_classes: int, num_ulb: int, p_cutoff: float,
                 thresh_warmup: bool = True, mapping: str = "convex"):
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping={mapping!r}; allowed: {', '.join(sorted(MAPPINGS))}")
        self.num_classes, self.p_cutoff = num_classes, p_cutoff
        self.thresh_warmup, self.mapping = thresh_warmup, MAPPINGS[mapping]
        self.selected_label = torch.full((num_ulb,), -1, dtype=torch.long)
        self.classwise_acc = torch.zeros(num_classes)

    def thresholds(self) -> torch.Tensor:
        """Current per-class thresholds ``p_cutoff * M(beta_c)``."""
        return self.p_cutoff * self.mapping(self.classwise_acc)

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, idx_ulb: torch.Tensor) -> torch.Tensor:
        """Mask from the previous state, then record this batch's confident predictions."""
        self.selected_label = self.selected_label.to(probs.device)
        self.classwise_acc = self.classwise_acc.to(probs.device)
        max_probs, pred = probs.max(dim=-1)
        mask = (max_probs >= self.thresholds()[pred]).to(probs.dtype)

        confident = max_probs >= self.p_cutoff
        # the confident samples take their prediction, the others keep theirs (a select, not a
        # boolean-mask index: no wait for the device to count the confident ones)
        idx = idx_ulb.to(self.selected_label.device)
        self.selected_label[idx] = torch.where(confident, pred, self.selected_label[idx])
        self._update_beta()
        return mask

    def _update_beta(self) -> None:
        counts = torch.bincount(self.selected_label + 1, minlength=self.num_classes + 1)
        per_class = counts[1:]
        denom = counts.max() if self.thresh_warmup else per_class.max()
        updated = per_class.float() / denom.float().clamp_min(1.0)
        # nothing selected yet: beta stays where it is (0)
        self.classwise_acc = torch.where(per_class.sum() > 0, updated, self.classwise_acc)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, n).clone() for n in self.names}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _load(self, state, self.names)


class FreeMatchThresholds:
    """Self-adaptive thresholds: ``tau_c = time_p * p_model[c] / max(p_model)``.

    EMAs with momentum m, updated from each batch before masking:
    ``time_p`` of the mean max-probability (the 0.8 quantile with ``use_quantile``),
    ``p_model`` of the mean prediction, ``label_hist`` of the histogram of argmax predictions.
    All start at 1/C.
    """

    names = ("time_p", "p_model", "label_hist")

    def __init__(self, num_classes: int, momentum: float = 0.999, use_quantile: bool = False,
                 clip_thresh: bool = False):
        self.num_classes, self.m = num_classes, momentum
        self.use_quantile, self.clip_thresh = use_quantile, clip_thresh
        self.time_p = torch.tensor(1.0 / num_classes)
        self.p_model = torch.full((num_classes,), 1.0 / num_classes)
        self.label_hist = torch.full((num_classes,), 1.0 / num_classes)

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        probs = probs.detach().float()
        m = self.m
        max_probs, pred = probs.max(dim=-1)
        confidence = torch.quantile(max_probs, 0.8) if self.use_quantile else max_probs.mean()
        self.time_p = m * self.time_p.to(probs.device) + (1 - m) * confidence
        if self.clip_thresh:
            self.time_p = self.time_p.clamp(0.0, 0.95)
        self.p_model = m * self.p_model.to(probs.device) + (1 - m) * probs.mean(dim=0)
        hist = torch.bincount(pred, minlength=self.num_classes).float() / len(pred)
        self.label_hist = m * self.label_hist.to(probs.device) + (1 - m) * hist

    def thresholds(self) -> torch.Tensor:
        return self.time_p * self.p_model / self.p_model.max()

    @torch.no_grad()
    def mask(self, probs: torch.Tensor) -> torch.Tensor:
        max_probs, pred = probs.max(dim=-1)
        return (max_probs >= self.thresholds().to(probs.device)[pred]).to(probs.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, n).clone() for n in self.names}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _load(self, state, self.names)


class TruncatedGaussianWeights:
    """SoftMatch's weight ``w = exp(-min(max p - mu, 0)^2 / (2 var / n_sigma^2))``.

    ``mu`` and ``var`` are EMAs (momentum m) of the batch mean and unbiased variance of the
    max-probability, starting at 1/C and 1, updated before weighting. Per class
    (``per_class``), each class's statistics use only the samples predicted as that class.

    Intent over USB: USB's per-class path is broken (it reads ``self.args`` inside the hook)
    and would, as written, pull the statistics of classes absent from a batch towards 0 and 1;
    here a class's mean is updated only when it has a sample in the batch and its variance only
    when it has two (an unbiased variance needs two). The global variance likewise skips
    batches of one sample instead of becoming NaN.
    """

    names = ("mu", "var")

    def __init__(self, num_classes: int, momentum: float = 0.999, n_sigma: float = 2.0,
                 per_class: bool = False):
        self.num_classes, self.m, self.n_sigma, self.per_class = (
            num_classes, momentum, n_sigma, per_class)
        shape = (num_classes,) if per_class else ()
        self.mu = torch.full(shape, 1.0 / num_classes)
        self.var = torch.ones(shape)

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        max_probs, pred = probs.detach().float().max(dim=-1)
        m = self.m
        mu, var = self.mu.to(probs.device), self.var.to(probs.device)
        if not self.per_class:
            self.mu = m * mu + (1 - m) * max_probs.mean()
            self.var = m * var + (1 - m) * max_probs.var(unbiased=True) \
                if len(max_probs) > 1 else var
            return
        # per-class sums as one-hot products: deterministic on GPUs, unlike index_add_
        onehot = torch.nn.functional.one_hot(pred, self.num_classes).float()
        n = onehot.sum(dim=0)
        mean = (onehot.T @ max_probs) / n.clamp_min(1.0)
        var_batch = (onehot.T @ (max_probs - mean[pred]) ** 2) / (n - 1.0).clamp_min(1.0)
        self.mu = torch.where(n >= 1, m * mu + (1 - m) * mean, mu)
        self.var = torch.where(n >= 2, m * var + (1 - m) * var_batch, var)

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        max_probs, pred = probs.max(dim=-1)
        mu, var = self.mu.to(probs.device), self.var.to(probs.device)
        if self.per_class:
            mu, var = mu[pred], var[pred]
        below = (max_probs - mu).clamp(max=0.0)
        return torch.exp(-(below**2) / (2.0 * var / self.n_sigma**2))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, n).clone() for n in self.names}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _load(self, state, self.names)
