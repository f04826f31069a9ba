"""CRMatch (Fan et al., "Revisiting Consistency Regularization for Deep Semi-supervised
Learning", 2021): FixMatch plus a feature-level consistency head and self-supervised
rotation prediction.

    p = softmax(f(weak(u))) (no gradient);  mask = 1[max p >= tau];  y_hat = argmax p
    Lu   = mean(mask * CE(f(strong(u)), y_hat))
    Ld   = mean(mask * max(0, cos(ds(h_s), ds(h_w))))   cosine embedding loss, target -1,
                                                         margin 0, gradient through both views
    Lrot = CE(rot(h(rotate(x, r))), r), every image rotated by r = 0, 90, 180, 270 degrees
    L = Lx + lambda_u * Lu + lambda_ds * Ld + rot_loss_ratio * Lrot

USB facts and SemiBench's choices:

* Weights. USB adds ``Lx + Lu + Ld (+ Lrot)``: ``ulb_loss_ratio`` and ``rot_loss_ratio`` are not
  weights, and rot_loss_ratio > 0 only switches Lrot on. SemiBench uses them as weights,
  defaulting to USB's config values (lambda_u = 1; rot_loss_ratio = 1 for images, 0 for text and
  audio), which gives USB's loss; lambda_ds (default 1) is SemiBench's.
* Feature head. USB's ``ds_classifier`` maps the flattened feature map of a WRN (8x8xd; 6x6 for
  STL-10, 7x7 for ImageNet) to d, and the pooled features of ViT/BERT/wav2vec/HuBERT to d.
  SemiBench's backbones expose pooled features only, so ``ds`` is Linear(d, d) on pooled
  features in every domain: USB's behaviour for the USB benchmark, not for classic WRN runs.
* Gradients. The weak view is forwarded with gradients (Ld back-propagates through both
  views) in every domain; its logits are detached for the pseudo-labels.
* Rotation. USB uses a separate loader over the unlabelled images with the weak labelled
  transform and a batch of batch_size images x 4 rotations. SemiBench rotates the weak views
  of the first batch_size unlabelled samples of the step (a random sample of the pool with the
  weak transform), all four ways, in the same forward pass. Images only: square images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semibench.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Batch,
    DataInfo,
    LossOutput,
    Outputs,
    param,
)
from semibench.algorithms.heads import RotationHead, rotate_batch
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean


@dataclass
class CRMatchParams:
    p_cutoff: float = param(0.95, "confidence threshold tau", allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight of the unsupervised loss Lu (USB adds it unweighted)",
                            allowed="[0, inf)")
    lambda_ds: float = param(1.0, "weight of the feature-consistency loss Ld (USB adds it "
                             "unweighted)", allowed="[0, inf)")
    rot_loss_ratio: float = param(1.0, "weight of the rotation loss (0 = off); images only",
                                  allowed="[0, inf)")


def rotation_labels(num_images: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """r for the 4 * n rotated images: n zeros (0 degrees), n ones (90), n twos, n threes."""
    return torch.arange(4, device=device).repeat_interleave(num_images)


def feature_consistency(ds_s: torch.Tensor, ds_w: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine embedding loss with target -1 and margin 0: max(0, cos(ds_s, ds_w))."""
    return F.cosine_similarity(ds_s.float(), ds_w.float(), dim=-1).clamp_min(0.0)


@ALGORITHMS.register("crmatch")
class CRMatch(Algorithm):
    name = "crmatch"
    Params = CRMatchParams
    param_defaults = {"image": {"rot_loss_ratio": 1.0}, "text": {"rot_loss_ratio": 0.0},
                      "audio": {"rot_loss_ratio": 0.0}}
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset()  # Ld needs the weak view's gradient

    @property
    def use_rotation(self) -> bool:
        return self.p.rot_loss_ratio > 0

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        heads: dict[str, nn.Module] = {"ds": nn.Linear(num_features, num_features)}
        if self.use_rotation:
            heads["rot"] = RotationHead(num_features)
        return heads

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        if self.use_rotation and info.domain != "image":
            raise ValueError(f"algorithm_params.{self.name}.rot_loss_ratio="
                             f"{self.p.rot_loss_ratio}: rotation prediction needs images, this "
                             f"task is {info.domain}; set it to 0")
        super().attach(model, ema_model, info)

    def forward(self, model: nn.Module, x: dict[str, torch.Tensor], cat: bool) -> Outputs:
        if self.use_rotation:
            images = x["ulb_weak"][: len(x["lb_weak"])]
            if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
                raise ValueError(f"crmatch: rotation needs square images [B, C, H, W], got "
                                 f"{tuple(images.shape)}")
            r = rotation_labels(len(images), images.device)
            x = {**x, "rot": rotate_batch(images.repeat(4, 1, 1, 1), r)}
        return super().forward(model, x, cat)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        if self.model is None:
            raise RuntimeError("crmatch: attach() must be called before compute_loss()")
        heads = self.model.ssl_heads
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # FixMatch on the unlabelled views
        probs = torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1)
        mask = fixed_threshold_mask(probs, self.p.p_cutoff)
        y_hat = probs.argmax(dim=-1)
        unsup = masked_mean(ce_loss(out.logits["ulb_strong"].float(), y_hat), mask)

        # Feature-level consistency between the views
        ds_w, ds_s = heads["ds"](out.feats["ulb_weak"]), heads["ds"](out.feats["ulb_strong"])
        ds_loss = masked_mean(feature_consistency(ds_s, ds_w), mask)

        loss = sup + self.p.lambda_u * unsup + self.p.lambda_ds * ds_loss
        log = {"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "ds_loss": ds_loss.detach()}
        # Self-supervised rotation prediction
        if self.use_rotation:
            rot_logits = heads["rot"](out.feats["rot"]).float()
            r = rotation_labels(len(rot_logits) // 4, rot_logits.device)
            rot_loss = ce_loss(rot_logits, r).mean()
            loss = loss + self.p.rot_loss_ratio * rot_loss
            log["rot_loss"] = rot_loss.detach()
        return LossOutput(loss=loss, log=log, mask=mask, pseudo_label=y_hat)
