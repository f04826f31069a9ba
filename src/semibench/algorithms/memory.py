"""Memory blocks that carry features across steps: SimMatch's labelled bank and CoMatch's
feature + class-probability queue.

Both keep their whole state in tensors, so ``state_dict()`` goes into the checkpoint as it is
and loads back with ``torch.load(weights_only=True)``; a resumed run continues bit for bit.
Contents are never part of the autograd graph (they are written under ``no_grad``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def float32(device: torch.device) -> torch.autocast:
    """Similarities to a memory in float32 even under bf16 autocast (softmax over sim / T
    amplifies rounding by 1 / T)."""
    return torch.autocast(device.type, enabled=False)


def _expect(state: dict[str, torch.Tensor], keys: tuple[str, ...], owner: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{owner}: checkpoint state lacks {', '.join(missing)}")


class LabelledBank:
    """One L2-normalised feature and one label per labelled sample (SimMatch).

    Slots are laid out by class from the labelled class counts (class 0 first), and every slot
    starts with a random unit vector, so the bank's labels match the labelled set from the
    first step. Two ways to write:

    * ``write(idx, f, y)``: slot = the sample's position in the labelled set (USB's bank);
      ``momentum`` m blends ``normalize(m * old + (1 - m) * new)`` (USB: 0.7), m = 0 overwrites.
    * ``push(f, y)``: a FIFO ring per class, for when the trainer does not say which labelled
      sample is which; each sample overwrites the oldest slot of its class.
    """

    def __init__(self, class_counts: torch.Tensor, dim: int, seed: int = 0):
        counts = torch.as_tensor(class_counts, dtype=torch.long).cpu()
        if counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) == 0:
            raise ValueError(f"LabelledBank: class counts {counts.tolist()} must be >= 0 "
                             "with at least one labelled sample")
        generator = torch.Generator().manual_seed(seed)  # leaves the global RNG alone
        self.feats = F.normalize(torch.randn(int(counts.sum()), dim, generator=generator), dim=1)
        self.labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts  # first slot of each class
        self.ptr = torch.zeros(len(counts), dtype=torch.long)  # next FIFO slot per class

    def __len__(self) -> int:
        return len(self.feats)

    def to(self, device: torch.device) -> LabelledBank:
        self.feats, self.labels = self.feats.to(device), self.labels.to(device)
        return self

    @torch.no_grad()
    def write(self, idx: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor,
              momentum: float = 0.0) -> None:
        """Write sample ``i``'s feature into slot ``idx[i]`` (its labelled-set position)."""
        idx = idx.to(self.feats.device).long()
        if len(idx):  # checked on the device: raises there, without a wait here
            torch._assert_async(((idx >= 0) & (idx < len(self))).all(),
                                f"LabelledBank: slot index out of range [0, {len(self)})")
        new = feats.detach().to(self.feats.dtype)
        if momentum > 0:
            new = F.normalize(momentum * self.feats[idx] + (1.0 - momentum) * new, dim=1)
        self.feats[idx] = new
        self.labels[idx] = labels.to(self.labels.device).long()

    @torch.no_grad()
    def push(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Overwrite the oldest slot of each sample's class, in batch order."""
        labels = labels.long().cpu()
        slots = []
        for c in labels.tolist():
            if self.counts[c] == 0:
                raise ValueError(f"LabelledBank: class {c} has no labelled slot")
            slots.append(int(self.starts[c] + self.ptr[c] % self.counts[c]))
            self.ptr[c] += 1
        idx = torch.tensor(slots, dtype=torch.long, device=self.feats.device)
        self.feats[idx] = feats.detach().to(self.feats.dtype)
        self.labels[idx] = labels.to(self.labels.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"feats": self.feats, "labels": self.labels, "ptr": self.ptr}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _expect(state, ("feats", "labels", "ptr"), "LabelledBank")
        if state["feats"].shape != self.feats.shape:
            raise ValueError(f"LabelledBank: checkpoint bank {tuple(state['feats'].shape)} does "
                             f"not fit this run's {tuple(self.feats.shape)}")
        device = self.feats.device
        self.feats = state["feats"].to(device)
        self.labels = state["labels"].to(device)
        self.ptr = state["ptr"].cpu().clone()


class FeatureProbQueue:
    """A FIFO of (feature, class-probability) pairs (CoMatch's memory-smoothed pseudo-labels).

    It is allocated at the first ``push`` when ``size`` is 0 there (the size depends on the
    batch size, which the algorithm learns from its first batch). ``filled`` counts the rows
    written so far, capped at ``size``; empty rows are zero.
    """

    def __init__(self) -> None:
        self.feats = torch.zeros(0, 0)
        self.probs = torch.zeros(0, 0)
        self.ptr = 0  # host-side counters: moving them never waits for the device
        self.filled = 0

    @property
    def size(self) -> int:
        return len(self.feats)

    def allocate(self, size: int, dim: int, num_classes: int,
                 device: torch.device | str = "cpu") -> None:
        if size < 1:
            raise ValueError(f"FeatureProbQueue: size {size} must be >= 1")
        self.feats = torch.zeros(size, dim, device=device)
        self.probs = torch.zeros(size, num_classes, device=device)
        self.ptr = 0
        self.filled = 0

    def to(self, device: torch.device) -> FeatureProbQueue:
        self.feats, self.probs = self.feats.to(device), self.probs.to(device)
        return self

    @property
    def is_full(self) -> bool:
        return self.size > 0 and self.filled >= self.size

    @torch.no_grad()
    def push(self, feats: torch.Tensor, probs: torch.Tensor) -> None:
        """Write the rows at the pointer, wrapping around; the pointer moves by ``len(feats)``."""
        if self.size == 0:
            raise RuntimeError("FeatureProbQueue: allocate() before push()")
        n = len(feats)
        if n > self.size:
            raise ValueError(f"FeatureProbQueue: {n} rows do not fit a queue of {self.size}")
        self.to(feats.device)
        idx = (self.ptr + torch.arange(n, device=feats.device)) % self.size
        self.feats[idx] = feats.detach().to(self.feats.dtype)
        self.probs[idx] = probs.detach().to(self.probs.dtype)
        self.ptr = (self.ptr + n) % self.size
        self.filled = min(self.filled + n, self.size)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"feats": self.feats, "probs": self.probs, "ptr": torch.tensor(self.ptr),
                "filled": torch.tensor(self.filled)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _expect(state, ("feats", "probs", "ptr", "filled"), "FeatureProbQueue")
        self.feats, self.probs = state["feats"], state["probs"]
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
