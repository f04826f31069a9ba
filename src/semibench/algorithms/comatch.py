"""CoMatch (Li et al., ICCV 2021): class probabilities and embeddings co-trained through
memory-smoothed pseudo-labels and a pseudo-label graph.

    f = normalize(proj(features))
    p = DA(softmax(f(weak(u))));  p_orig = p              uniform target, last da_len batches
    after the first epoch, once the queue is full:                      memory smoothing
        A = rownorm(exp(f_w . Q_feats / T));  p = alpha * p + (1 - alpha) * A . Q_probs
    mask = 1[max p >= tau]
    enqueue [f_w; f_lb] with [p_orig; onehot(y)]          FIFO of queue_batch * (B + mu B)
    W = p p^T, diag(W) = 1, W = W * 1[W >= contrast_p_cutoff], row-normalised   label graph
    L_c = mean_b -sum_j W_bj log(rownorm(exp(f_s0 . f_s1 / T))_bj + 1e-7)
    L = CE(lb) + lambda_u * mean(mask * CE(f(strong(u)), p)) + lambda_c * L_c

USB facts and SemiBench's choices:

* Queue size. USB's formula ``queue_batch * (uratio + 1) * batch_size`` is the number of
  embeddings enqueued per step times ``queue_batch``; SemiBench takes that number from the
  first batch. queue_batch is 32 for images and 128 for text and audio (USB's configs: 512
  and 2048 rows at batch 8, uratio 1); USB's classic CV uses 5.
* Smoothing starts when ``iteration >= bank_warmup`` (USB's "epoch > 0": 1024 iterations in
  every USB config) and ``iteration > queue_batch`` (USB's condition), with the queue as it
  was before this step's enqueue.
* The two strong views are the views "strong" and "strong2": independent draws. For text
  USB gives the two back-translations in shuffled order, so they always differ; an
  independent draw can pick the same back-translation twice.
* The soft target p is used as it is (USB's ``hard_label`` and ``T`` sharpening are unused).
* lambda_c is 1; USB's STL-10 configs (USB and classic CV) use 5, which
  ``config/usb.yaml`` and ``config/classic_cv.yaml`` set for STL-10.
* EMA. USB evaluates CoMatch with ema_m = 0.999 in its CV configs (0 elsewhere); as for
  SimMatch this is left to the run's ``train.ema_m`` (no EMA warm-up: see simmatch.py).
* ``epass = True`` is USB's EPASS variant (three projection heads), off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semibench.algorithms.base import ALGORITHMS, Algorithm, Batch, LossOutput, Outputs, param
from semibench.algorithms.distalign import DistAlignQueue
from semibench.algorithms.heads import project, projection_heads
from semibench.algorithms.losses import ce_loss, fixed_threshold_mask, masked_mean, one_hot
from semibench.algorithms.memory import FeatureProbQueue, float32


@dataclass
class CoMatchParams:
    p_cutoff: float = param(0.95, "confidence threshold tau of the pseudo-label mask",
                            allowed="(0, 1]")
    lambda_u: float = param(1.0, "weight lambda_u of the unsupervised loss", allowed="[0, inf)")
    lambda_c: float = param(1.0, "weight lambda_c of the graph contrastive loss (USB's "
                            "contrast_loss_ratio; 5 on STL-10)", allowed="[0, inf)")
    contrast_p_cutoff: float = param(0.8, "graph edges below this pseudo-label similarity are "
                                     "cut", allowed="[0, 1]")
    T: float = param(0.2, "temperature of the embedding similarities", allowed="(0, inf)")
    smoothing_alpha: float = param(0.9, "alpha of the memory smoothing (1 = none)",
                                   allowed="[0, 1]")
    da_len: int = param(32, "batches in the distribution-alignment queue", allowed="[1, inf)")
    proj_size: int = param(64, "size of the projected embedding", allowed="[1, inf)")
    queue_batch: int = param(32, "the memory queue holds the embeddings of this many steps",
                             allowed="[1, inf)")
    bank_warmup: int = param(1024, "iterations without memory smoothing (USB's first epoch)",
                             allowed="[0, inf)")
    epass: bool = param(False, "three projection heads averaged (EPASS); USB's intended "
                        "CoMatch has one")


def memory_smooth(p: torch.Tensor, f_w: torch.Tensor, queue_feats: torch.Tensor,
                  queue_probs: torch.Tensor, T: float, alpha: float) -> torch.Tensor:
    """alpha * p + (1 - alpha) * softmax(f_w . queue_feats / T) . queue_probs."""
    affinity = torch.softmax(f_w @ queue_feats.T / T, dim=-1)
    return alpha * p + (1 - alpha) * affinity @ queue_probs


def pseudo_label_graph(p: torch.Tensor, cutoff: float) -> torch.Tensor:
    """W = p p^T with a unit diagonal, edges below ``cutoff`` removed, rows summing to 1."""
    w = p @ p.T
    w.fill_diagonal_(1.0)
    w = w * (w >= cutoff).to(w.dtype)
    return w / w.sum(dim=-1, keepdim=True)


def graph_contrastive_loss(f_s0: torch.Tensor, f_s1: torch.Tensor, graph: torch.Tensor,
                           T: float) -> torch.Tensor:
    """mean_b -sum_j W_bj log(rownorm(exp(f_s0 . f_s1 / T))_bj + 1e-7)."""
    sim = torch.exp(f_s0 @ f_s1.T / T)
    sim_probs = sim / sim.sum(dim=-1, keepdim=True)
    return -(torch.log(sim_probs + 1e-7) * graph).sum(dim=-1).mean()


@ALGORITHMS.register("comatch")
class CoMatch(Algorithm):
    name = "comatch"
    Params = CoMatchParams
    param_defaults = {"image": {"queue_batch": 32}, "text": {"queue_batch": 128},
                      "audio": {"queue_batch": 128}}
    #: USB evaluates CoMatch's EMA model in CV (ema_m 0.999)
    train_defaults = {"image": {"ema_m": 0.999}}
    lb_views = ("weak",)
    ulb_views = ("weak", "strong", "strong2")
    target_views = frozenset({"ulb_weak"})

    def __init__(self, params: CoMatchParams, **kwargs):
        super().__init__(params, **kwargs)
        self.da = DistAlignQueue(self.num_classes, params.da_len)
        self.queue = FeatureProbQueue()

    def build_modules(self, num_features: int) -> dict[str, nn.Module]:
        return projection_heads(num_features, self.p.proj_size, self.p.epass)

    def compute_loss(self, out: Outputs, batch: Batch, iteration: int) -> LossOutput:
        if self.model is None:
            raise RuntimeError("comatch: attach() must be called before compute_loss()")
        heads = self.model.ssl_heads
        logits_s0 = out.logits["ulb_strong"].float()
        # Labelled cross-entropy
        sup = ce_loss(out.logits["lb_weak"], batch.y_lb).mean()

        device = logits_s0.device
        with torch.no_grad():
            f_w = project(heads, out.feats["ulb_weak"].detach())
            f_lb = project(heads, out.feats["lb_weak"].detach())
            p = self.da(torch.softmax(out.logits["ulb_weak"].detach().float(), dim=-1))
            p_orig = p
            if self.queue.size == 0:  # USB's queue_batch * (uratio + 1) * batch_size
                self.queue.allocate(self.p.queue_batch * (len(f_w) + len(f_lb)), f_w.shape[1],
                                    self.num_classes, device)
            self.queue.to(device)
            # Memory-smoothed pseudo-labels, from the queue before this step
            if iteration >= self.p.bank_warmup and iteration > self.p.queue_batch:
                with float32(device):
                    p = memory_smooth(p, f_w, self.queue.feats, self.queue.probs, self.p.T,
                                      self.p.smoothing_alpha)
            mask = fixed_threshold_mask(p, self.p.p_cutoff)
            onehot = one_hot(batch.y_lb, self.num_classes)
            self.queue.push(torch.cat([f_w, f_lb]), torch.cat([p_orig, onehot]))
            with float32(device):  # the 0.8 edge cut is taken on float32 similarities
                graph = pseudo_label_graph(p, self.p.contrast_p_cutoff)

        # Class consistency on the first strong view
        unsup = masked_mean(ce_loss(logits_s0, p), mask)
        # Graph-contrastive loss between the two strong views' embeddings
        f_s0 = project(heads, out.feats["ulb_strong"])
        f_s1 = project(heads, out.feats["ulb_strong2"])
        with float32(device):
            contrast = graph_contrastive_loss(f_s0, f_s1, graph, self.p.T)
        loss = sup + self.p.lambda_u * unsup + self.p.lambda_c * contrast
        return LossOutput(
            loss=loss,
            log={"sup_loss": sup.detach(), "unsup_loss": unsup.detach(),
                 "contrast_loss": contrast.detach()},
            mask=mask,
            pseudo_label=p.argmax(dim=-1),
        )

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"queue": self.queue.state_dict(), "da": self.da.state_dict()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.queue.load_state_dict(state["queue"])
        self.da.load_state_dict(state["da"])
