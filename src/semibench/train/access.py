"""The run's data, as the trainer and the algorithms share it.

Most algorithms see one batch at a time. A few need the whole training set between two steps:
CReST pseudo-labels every unlabelled sample after each generation and adds the confident ones
to the labelled set; CoSSL fits a class-balanced classifier on the features of every sample.
:class:`TrainingData` owns the stored inputs, the pools, the views and the device; it
implements the port they may use (:class:`semibench.algorithms.base.TrainingPort`). The trainer
builds it, reads its pools every step, keeps its ``model`` / ``teacher`` current and hears of a
new labelled set through ``on_labelled``; nothing here knows the trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from semibench.rng import step_generator

View = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class TrainingData:
    """The stored inputs, labelled / unlabelled pools, views and models of one run."""

    def __init__(self, *, x_train: torch.Tensor, y_train: torch.Tensor,
                 labelled: torch.Tensor, unlabelled: torch.Tensor,
                 views: Mapping[str, View], device: torch.device, seed: int,
                 num_classes: int, eval_batch_size: int) -> None:
        self.x_train, self.y_train = x_train, y_train
        self.views = views
        self._device, self._seed = device, seed
        self._num_classes, self._eval_batch_size = num_classes, eval_batch_size
        #: the split's own labelled set (stored-input indices, CPU)
        self.split_lb = labelled
        #: the labelled set now and its labels (a milestone may change them: CReST adds
        #: pseudo-labelled samples, whose labels are then these, not the stored ones)
        self.lb_pool, self.lb_y = labelled, y_train[labelled]
        #: the unlabelled pool's stored-input indices (positions in it are the algorithm's
        #: per-sample indices)
        self.ulb_pool = unlabelled
        #: the live model and the one evaluation uses (its EMA, or the live one): the trainer
        #: sets them whenever it builds a model
        self.model: nn.Module | None = None
        self.teacher_model: nn.Module | None = None
        #: called after :meth:`set_labelled` (the trainer re-attaches the algorithm)
        self.on_labelled: Callable[[], None] = lambda: None

    def place(self, device: torch.device, fits: Callable[[int], bool]) -> str | None:
        """Move the stored inputs to ``device`` when ``fits(size in bytes)``, else pin them in
        host memory; return the fallback line for the latter (None when they moved)."""
        stored = [self.x_train, self.y_train]
        size = sum(t.numel() * t.element_size() for t in stored)
        if fits(size):
            self.x_train, self.y_train = (t.to(device) for t in stored)
            self.lb_y = self.lb_y.to(self.y_train.device)
            return None
        self.x_train, self.y_train = (t.pin_memory() for t in stored)
        return (f"stored inputs ({size / 2**30:.1f} GiB) kept in pinned host memory: they do "
                "not fit a quarter of the free GPU memory")

    # ------------------------------------------------------------------ facts
    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def eval_batch_size(self) -> int:
        return self._eval_batch_size

    @property
    def teacher(self) -> nn.Module:
        """The model evaluation uses: the EMA model, or the live one when there is no EMA."""
        model = self.teacher_model if self.teacher_model is not None else self.model
        assert model is not None, "no model yet"
        return model

    # ------------------------------------------------------------------ pools
    def labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled set now: stored-input indices and their labels (CPU)."""
        return self.lb_pool.clone(), self.lb_y.cpu().clone()

    def split_labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's own labelled set (before any method added to it)."""
        return self.split_lb.clone(), self.y_train[self.split_lb.to(self.y_train.device)].cpu()

    def unlabelled(self) -> torch.Tensor:
        """The unlabelled pool's stored-input indices (CPU)."""
        return self.ulb_pool.clone()

    def set_labelled(self, index: torch.Tensor, labels: torch.Tensor) -> None:
        """Train on these samples with these (pseudo-)labels from the next step on; the
        trainer re-attaches the algorithm to the new set and checkpoints it."""
        if index.ndim != 1 or index.shape != labels.shape:
            raise ValueError("set_labelled: index and labels must be 1-D and of one length")
        if len(index) == 0:
            raise ValueError("set_labelled: the labelled set cannot be empty")
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(f"set_labelled: labels must lie in [0, {self.num_classes})")
        self.restore_labelled(index.long().cpu(), labels.long().cpu())

    def restore_labelled(self, index: torch.Tensor, labels: torch.Tensor) -> None:
        """:meth:`set_labelled` without the checks (a checkpoint's own labelled set)."""
        self.lb_pool, self.lb_y = index, labels.to(self.y_train.device)
        self.on_labelled()

    # ------------------------------------------------------------------ inputs
    def view(self, index: torch.Tensor, view: str, generator: torch.Generator) -> torch.Tensor:
        """One view ("weak", "strong", "eval", ...) of the stored inputs ``index``, on the
        training device."""
        x = self.views[view](self.x_train[index.to(self.x_train.device)], generator)
        return x.to(self.device, non_blocking=True)

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
