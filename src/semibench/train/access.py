"""What an algorithm may read and change of the training data at a milestone.

Most algorithms see one batch at a time. A few need the whole training set between two steps:
CReST pseudo-labels every unlabelled sample after each generation and adds the confident ones
to the labelled set; CoSSL fits a class-balanced classifier on the features of every sample.
:class:`TrainingData` gives them that, through the trainer's own stored inputs, views and
device, without handing them the trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from semibench.train.sampling import step_generator

if TYPE_CHECKING:
    from semibench.train.loop import Trainer


class TrainingData:
    """The trainer's stored inputs, pools and models, as a method may use them."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    # ------------------------------------------------------------------ facts
    @property
    def num_classes(self) -> int:
        return self._trainer.num_classes

    @property
    def device(self) -> torch.device:
        return self._trainer.device

    @property
    def seed(self) -> int:
        return self._trainer.seed

    @property
    def eval_batch_size(self) -> int:
        return self._trainer.cfg.eval_batch_size

    @property
    def model(self) -> nn.Module:
        """The live model."""
        return self._trainer.model

    @property
    def teacher(self) -> nn.Module:
        """The model evaluation uses: the EMA model, or the live one when there is no EMA."""
        trainer = self._trainer
        return trainer.ema.model if trainer.ema is not None else trainer.model

    # ------------------------------------------------------------------ pools
    def labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled set now: stored-input indices and their labels (CPU)."""
        return self._trainer.lb_pool.clone(), self._trainer.lb_y.cpu().clone()

    def split_labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's own labelled set (before any method added to it)."""
        return self._trainer.split_lb.clone(), self._trainer.y_train[
            self._trainer.split_lb.to(self._trainer.y_train.device)].cpu()

    def unlabelled(self) -> torch.Tensor:
        """The unlabelled pool's stored-input indices (CPU)."""
        return self._trainer.ulb_pool.clone()

    def set_labelled(self, index: torch.Tensor, labels: torch.Tensor) -> None:
        """Train on these samples with these (pseudo-)labels from the next step on; the
        trainer re-attaches the algorithm to the new set and checkpoints it."""
        if index.ndim != 1 or index.shape != labels.shape:
            raise ValueError("set_labelled: index and labels must be 1-D and of one length")
        if len(index) == 0:
            raise ValueError("set_labelled: the labelled set cannot be empty")
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(f"set_labelled: labels must lie in [0, {self.num_classes})")
        self._trainer.set_labelled(index.long().cpu(), labels.long().cpu())

    # ------------------------------------------------------------------ inputs
    def view(self, index: torch.Tensor, view: str, generator: torch.Generator) -> torch.Tensor:
        """One view ("weak", "strong", "eval", ...) of the stored inputs ``index``, on the
        training device."""
        trainer = self._trainer
        x = trainer.views[view](trainer.x_train[index.to(trainer.x_train.device)], generator)
        return x.to(trainer.device, non_blocking=True)

    @torch.no_grad()
    def features(self, model: nn.Module, index: torch.Tensor, view: str = "eval",
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits of ``model`` (in eval mode) on a view of every sample of
        ``index``, in batches of ``eval_batch_size``; random views draw from ``seed``."""
        was_training = model.training
        model.eval()
        feats, logits = [], []
        try:
            for start in range(0, len(index), self.eval_batch_size):
                part = index[start:start + self.eval_batch_size]
                gen = step_generator(self.seed, seed, start)
                x = self.view(part, view, gen)
                f = model.forward_features(x)
                feats.append(f.float())
                logits.append(model.forward_head(f).float())
        finally:
            model.train(was_training)
        if not feats:
            empty = torch.empty(0, device=self.device)
            return empty, empty
        return torch.cat(feats), torch.cat(logits)
