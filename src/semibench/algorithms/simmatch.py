"""SimMatch (Zheng et al., CVPR 2022): semantic and instance similarity through a labelled
memory bank.

    f = normalize(proj(features));  bank = one feature and label per labelled sample
    p_hat = DA(softmax(f(weak(u))))                   distribution alignment, uniform target,
                                                      p_model = mean of the last da_len batches
    t0 = softmax(f_w . bank / T)                      teacher similarities        (B x K)
    t  = normalize(t0 * p_hat[:, label_k])            "unfolding"
    p  = alpha * p_hat + (1 - alpha) * sum_{k: label_k = c} t0_k      "aggregation"
    L_in = mean_b sum_k -t_k log softmax(f_s . bank / T)_k
    L = CE(lb) + lambda_u * mean(1[max p >= tau] * CE(f(strong(u)), p)) + lambda_in * L_in

During USB's first epoch (``bank_warmup`` iterations: 1024 in every USB config) L_in is 0
and p = p_hat, while the bank fills up.

USB facts and SemiBench's choices:

* EPASS. At USB HEAD the CV YAMLs set ``use_epass: True`` (PR #201 switched them silently)
  and the NLP/audio YAMLs lack the key, so SimMatch crashes there. SemiBench implements the
  intended algorithm, plain SimMatch, in every domain (``epass = False``); ``epass = True``
  averages three projection heads' unit embeddings and renormalises them (the bank is on the
  unit sphere; USB's text only says "averaged").
* Bank. USB forces K to the labelled-set size and indexes the bank by labelled index; so does
  SemiBench, with the trainer's ``Batch.idx_lb`` (positions in the labelled set). Without
  ``idx_lb`` (a batch built by hand) each labelled sample overwrites the oldest slot of its
  class (a per-class FIFO of the same size and class layout), see ``memory.LabelledBank``. Slots start as random unit vectors labelled by the class layout
  (USB's labels are placeholders until a sample is written; both are gone after warm-up).
* Bank update. USB's list of datasets (cifar, svhn, stl10, tissuemnist, eurosat, superbks,
  esc50, gtzan, urbansound8k, aclImdb, ag_news, dbpedia) uses the online model's labelled
  embeddings and ``normalize(0.7 * old + 0.3 * new)``; the others (semi_aves, amazon, yahoo,
  yelp, fsdnoisy, imagenet) write the EMA model's embedding as it is. ``ema_teacher = False``
  (the default: most USB tasks, every offline task) is the first, ``True`` the second.
  USB normalises the ``D x B`` slice with ``F.normalize``'s default ``dim=1``, i.e. each feature
  dimension across the batch; SemiBench normalises each sample's embedding (the intent: bank
  entries are unit vectors). With ``ema_teacher`` and no EMA model (ema_m = 0, as in USB's
  NLP configs, where the EMA equals the live weights) the live, detached embeddings are used.
* T. USB's committed configs use 0.1 for CIFAR-100, STL-10 and every NLP task, and 0.2 for
  every audio task and for EuroSAT, TissueMNIST and Semi-Aves. The domain defaults here are
  0.1 for images and text and 0.2 for audio; ``config/usb.yaml`` sets ``T: 0.2`` for those
  three vision tasks.
* EMA. USB evaluates SimMatch with ema_m = 0.999 in its CV and audio configs (0 for text).
  That is not a train default here: the EMA is only the evaluated model (and the teacher of
  ``ema_teacher``), and with no EMA warm-up a short run (the offline tasks, a 200-iteration
  test) would evaluate a nearly untrained model. Reproducing USB's SimMatch numbers needs
  ``train.ema_m: 0.999`` for these runs.
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
from semibench.algorithms.distalign import DistAlignQueue
from semibench.algorithms.heads import project, projection_heads
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean
from semibench.algorithms.memory import LabelledBank, float32


@dataclass
class SimMatchParams:
    p_cutoff: float = param(0.95, "confidence threshold tau of the pseudo-label mask",
                            allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    lambda_in: float = param(1.0, "weight lambda_in of the instance-similarity loss L_in",
                             allowed="[0, inf)")
    T: float = param(0.1, "temperature of the similarities to the bank (USB: 0.1; 0.2 for "
                     "audio, EuroSAT, TissueMNIST, Semi-Aves)", allowed="(0, inf)")
    smoothing_alpha: float = param(0.9, "alpha of the label aggregation (1 = none)",
                                   allowed="[0, 1]")
    da_len: int = param(32, "batches in the distribution-alignment queue", allowed="[1, inf)")
    proj_size: int = param(128, "size of the projected embedding", allowed="[1, inf)")
    bank_momentum: float = param(0.7, "bank update m: normalize(m * old + (1 - m) * new) "
                                 "(USB: 0.7)", allowed="[0, 1)")
    ema_teacher: bool = param(False, "labelled embeddings from the EMA model, written as they "
                              "are (USB's use_ema_teacher)")
    bank_warmup: int = param(1024, "iterations without L_in and aggregation (USB's first "
                             "epoch)", allowed="[0, inf)")
    epass: bool = param(False, "three projection heads averaged (EPASS); USB's intended "
                        "SimMatch has one")


def simmatch_targets(
    p_hat: torch.Tensor, f_w: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
    T: float, alpha: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The instance target t (unfolding) and the class target p (aggregation).

    ``p_hat`` [B, C] aligned weak probabilities, ``f_w`` [B, D] weak embeddings, ``bank``
    [K, D] with labels [K]."""
    t0 = torch.softmax(f_w @ bank.T / T, dim=-1)
    unfolded = t0 * p_hat[:, bank_labels]
    t = unfolded / unfolded.sum(dim=-1, keepdim=True)
    if alpha < 1:
        aggregated = torch.zeros_like(p_hat).index_add_(1, bank_labels, t0)
        p = alpha * p_hat + (1 - alpha) * aggregated
    else:
        p = p_hat
    return t, p


def instance_loss(t: torch.Tensor, f_s: torch.Tensor, bank: torch.Tensor, T: float) -> torch.Tensor:
    """L_in = mean_b sum_k -t_k log softmax(f_s . bank / T)_k."""
    log_s = F.log_softmax(f_s @ bank.T / T, dim=-1)
    return -(t * log_s).sum(dim=-1).mean()


@ALGORITHMS.register("simmatch")
class SimMatch(Algorithm):
    name = "simmatch"
    Params = SimMatchParams
    param_defaults = {"audio": {"T": 0.2}}  # USB: 0.2 for audio, 0.1 for text and images
    #: USB evaluates SimMatch's EMA model in CV and audio (ema_m 0.999), not in NLP
    train_defaults = {"image": {"ema_m": 0.999}, "audio": {"ema_m": 0.999}}
    lb_views = ("weak",)
    ulb_views = ("weak", "strong")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: SimMatchParams, **kwargs):
        super().__init__(params, **kwargs)
        self.da = DistAlignQueue(self.num_classes, params.da_len)
        self.bank: LabelledBank | None = None

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        return projection_heads(num_features, self.p.proj_size, self.p.epass)

    def attach(self, model: nn.Module, ema_model: nn.Module | None, info: DataInfo) -> None:
        super().attach(model, ema_model, info)
        self.bank = LabelledBank(info.lb_class_counts, self.p.proj_size)

    @torch.no_grad()
    def _labelled_embeddings(self, out: Outputs, batch: Batch) -> torch.Tensor:
        """What goes into the bank: the online embeddings of the labelled weak view, or the EMA
        model's (``ema_teacher``), run like USB's shadow weights in train mode."""
        if self.p.ema_teacher and self.ema_model is not None:
            teacher = self.ema_model
            was_training = teacher.training
            teacher.train()
            try:
                feats = teacher.forward_features(batch.x_lb["weak"])
                return project(teacher.ssl_heads, feats)
            finally:
                teacher.train(was_training)
        return project(self.model.ssl_heads, out.feats["lb_weak"].detach())

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        if self.bank is None or self.model is None:
            raise RuntimeError("simmatch: attach() must be called before compute_loss()")
        heads = self.model.ssl_heads
        logits_s = out.logits["ulb_strong"].float()
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        # Teacher: aligned class probabilities and similarities to the (pre-step) bank
        device = logits_s.device
        self.bank.to(device)
        bank, bank_labels = self.bank.feats.clone(), self.bank.labels.clone()
        warm = iteration < self.p.bank_warmup
        with torch.no_grad():
            f_w = project(heads, out.feats["ulb_weak"].detach())
            p_hat = self.da(torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1))
            with float32(device):
                t, p = simmatch_targets(p_hat, f_w, bank, bank_labels, self.p.T,
                                        self.p.smoothing_alpha)
            if warm:
                p = p_hat

        # Student: instance similarity of the strong view to the same bank
        f_s = project(heads, out.feats["ulb_strong"])
        with float32(device):
            in_loss = instance_loss(t, f_s, bank, self.p.T)
        if warm:
            in_loss = in_loss * 0.0

        # Soft pseudo-label with a confidence mask
        mask = fixed_threshold_mask(p, self.p.p_cutoff)
        unsup = masked_mean(ce_loss(logits_s, p), mask)
        loss = sup + self.p.lambda_u * unsup + self.p.lambda_in * in_loss

        # Bank update, after the loss used the old bank
        f_lb = self._labelled_embeddings(out, batch)
        idx_lb = getattr(batch, "idx_lb", None)
        if idx_lb is not None:
            momentum = 0.0 if self.p.ema_teacher else self.p.bank_momentum
            self.bank.write(idx_lb, f_lb, batch.y_lb, momentum)
        else:
            self.bank.push(f_lb, batch.y_lb)
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(), "in_loss": in_loss.detach()},
            mask=mask,
            pseudo_label=p.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.bank is None:
            raise RuntimeError("simmatch: attach() must be called before state_dict()")
        return {"bank": self.bank.state_dict(), "da": self.da.state_dict()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        if self.bank is None:
            raise RuntimeError("simmatch: attach() must be called before load_state_dict()")
        self.bank.load_state_dict(state["bank"])
        self.da.load_state_dict(state["da"])
