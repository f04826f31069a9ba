"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017; USB's ``meanteacher``): the student must agree
with a teacher whose weights are the exponential moving average of the student's.

    z_t = f_ema(weak(u))     (teacher: EMA weights, train mode, no gradient, BN statistics frozen)
    z_s = f(weak2(u))        (student: a second weak view, BN statistics frozen)
    ramp = clip(it / (unsup_warm_up * iterations), 0, 1)
    L = CE(f(weak(x)), y) + lambda_u * ramp * mean_i mean_c (softmax(z_s) - softmax(z_t))^2

USB versions, exactly (``train_step`` of ``algorithms/meanteacher/meanteacher.py``):

* semilearn 0.3.1 and 0.3.2 (PyPI; the fix of #135 for #102): the student logits come from
  ``self.model(x_ulb_s)`` with BN frozen. For this algorithm USB's datasets fill ``x_ulb_s``
  with a second *weak* view, not a strong one: a second draw of the weak transform (CV), a
  second random crop (audio), the original text again (NLP). That is what SemiBench does
  (``weak2``; for text, a second draw of the weak view).
* USB's current main (since PR #201, 2024-03, still at 1ef4cbe): it still runs the model on
  ``x_ulb_s`` but then takes ``logits_x_ulb_s = outs_x_ulb_w['logits']``, the teacher's
  logits, so the consistency loss is identically 0 and MeanTeacher trains as the supervised
  baseline (reported again as #226). SemiBench does not reproduce that bug.
* semilearn before 0.3.1 had the same bug (#102).

The trainer's EMA model (``train.ema_m``, 0.999 by default for this algorithm in every domain)
is the teacher, run in train mode as USB does (dropout on, batch statistics normalise). USB's
NLP configs set ema_m 0.0 (a config-generator slip), which makes the teacher the student; here
that only happens if the user sets ``train.ema_m: 0``: the live model is then the teacher, still
under no_grad. As in USB, every view is its own forward pass whatever ``train.use_cat`` says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import ALGORITHMS, Outputs, param
from semibench.algorithms.bn import forward_per_view
from semibench.algorithms.pimodel import PiModel, PiModelParams


@contextmanager
def train_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in train mode and restore its previous mode (the EMA model is kept in
    eval mode for evaluation)."""
    was_training = module.training
    module.train()
    try:
        yield module
    finally:
        module.train(was_training)


@dataclass
class MeanTeacherParams(PiModelParams):
    lambda_u: float = param(50.0, "weight lambda_u of the consistency loss", allowed="[0, inf)")


@ALGORITHMS.register("meanteacher")
class MeanTeacher(PiModel):
    """The Pi-model's loss; only the forward pass (who produces the target) differs."""

    name = "meanteacher"
    Params = MeanTeacherParams
    train_defaults = {"all": {"ema_m": 0.999}}
    target_views = frozenset({"ulb_weak"})

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        out = forward_per_view(model, {"lb_weak": x["lb_weak"]})
        teacher = self.ema_model if self.ema_model is not None else model
        with train_mode(teacher):
            t = forward_per_view(teacher, {"ulb_weak": x["ulb_weak"]}, no_grad={"ulb_weak"})
        s = forward_per_view(model, {"ulb_weak2": x["ulb_weak2"]})
        out.logits.update(t.logits | s.logits)
        out.feats.update(t.feats | s.feats)
        return out
