"""FLOP counting: per-sample FLOPs of a backbone's passes (``FlopCounterMode``, on ``meta``
where possible), and the passes a training step makes, recorded by running the algorithm's own
code on a probe backbone."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from semibench.plan.errors import PlanError
from semibench.plan.models import build_backbone


def _flops(fn: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _meta_nonzero() -> Iterator[None]:
    """Boolean indexing on ``meta`` (HuBERT's masked time steps): assume all non-zero; it
    changes no counted FLOPs."""
    import torch.fx.experimental._config as fx_config

    old = fx_config.meta_nonzero_assume_all_nonzero
    fx_config.meta_nonzero_assume_all_nonzero = True
    try:
        yield
    finally:
        fx_config.meta_nonzero_assume_all_nonzero = old


def _example(shape: tuple[int, ...], dtype: torch.dtype, batch: int, device: str) -> torch.Tensor:
    if dtype == torch.long:  # token ids: [CLS] ... [SEP] without padding (every position counts)
        x = torch.full((batch, *shape), 1000, dtype=torch.long, device=device)
        return x
    return torch.randn(batch, *shape, device=device)


def _meta_model(name: str, args_json: str) -> nn.Module:
    """The backbone on the ``meta`` device. A text backbone's attention mask is dropped there:
    transformers reads it (``.item()``) to pick a kernel, and it changes no counted FLOPs."""
    model, _ = build_backbone(name, json.loads(args_json))
    if hasattr(model, "_mask"):
        model._mask = lambda ids: None
    return model


#: batch at which a pass is counted; the backbones are per-sample (no op mixes samples in a
#: counted way), so FLOPs are linear in the batch (tests/test_plan.py checks it)
COUNT_BATCH = 2


@functools.cache
def per_sample_flops(name: str, args_json: str, shape: tuple[int, ...], dtype: torch.dtype,
                     train: bool) -> tuple[float, float, str]:
    """(forward, backward) FLOPs per sample of ``forward_features`` and where they were
    counted: on ``meta``, else on the CPU (random weights, real arithmetic)."""
    def count(m: nn.Module, device: str) -> tuple[float, float]:
        m.train(train)
        x = _example(shape, dtype, COUNT_BATCH, device)
        fwd = _flops(lambda: m.forward_features(x))
        bwd = 0
        if train:
            bwd = _flops(lambda: m.forward_features(x).float().sum().backward()) - fwd
            m.zero_grad(set_to_none=True)
        return fwd / COUNT_BATCH, bwd / COUNT_BATCH

    try:
        with _meta_nonzero():
            fwd, bwd = count(_meta_model(name, args_json), "meta")
        return fwd, bwd, "meta"
    except (RuntimeError, NotImplementedError):
        fwd, bwd = count(build_backbone(name, json.loads(args_json), "cpu")[0], "cpu")
        return fwd, bwd, "cpu"


@dataclass
class PassRecord:
    """One call of the backbone during a step: its batch, and whether it was back-propagated."""

    batch: int
    grad: bool
    backward: bool = False


class _Probe(nn.Module):
    """A stand-in backbone that records every pass the algorithm makes (batch, gradient) and
    returns differentiable features, so that the algorithm's own code decides the passes."""

    def __init__(self, num_features: int, head: nn.Module, is_text: bool):
        super().__init__()
        self.num_features = num_features
        self.head = head
        self.is_text = is_text
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[PassRecord] = []
        self.gen = torch.Generator().manual_seed(0)

    def _features(self, x: torch.Tensor, carrier: torch.Tensor | None = None) -> torch.Tensor:
        record = PassRecord(batch=x.shape[0], grad=torch.is_grad_enabled())
        self.calls.append(record)
        base = torch.randn(x.shape[0], self.num_features, generator=self.gen) * 3
        feats = base * self.scale
        if carrier is not None and carrier.is_floating_point():
            feats = feats + carrier.reshape(x.shape[0], -1).float().mean(1, keepdim=True)
        if feats.requires_grad:
            def mark(grad: torch.Tensor) -> torch.Tensor:
                record.backward = True
                return grad

            feats.register_hook(mark)
        return feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x, x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return feats if pre_logits else self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_text:
            return torch.zeros(*x.shape, 4)
        return x

    def forward_embedded(self, e: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._features(x, e)


#: a probe run takes this many steps and counts the last one (the algorithm believes the run
#: is this long, so warm-ups and ramps are over by then). Its inputs are tiny tensors of the
#: right rank (the backbone's cost comes from :func:`per_sample_flops`), and its data sizes
#: fixed (labelled set, unlabelled pool), so one probe serves every task of a domain:
#: memory-bank products are counted at these sizes (negligible next to the backbone).
PROBE_LB, PROBE_ULB = 256, 1024
PROBE_STEPS = 6


@dataclass(frozen=True)
class StepShape:
    """What one training step runs through the backbone (from the algorithm's own code)."""

    passes: tuple[tuple[int, bool, bool], ...]  # (batch, grad, backward)
    head_flops: int  # heads, projection heads and losses, counted on the CPU


@functools.cache
def step_shape(algorithm: str, params_json: str, domain: str, num_classes: int,
               batch_size: int, uratio: int, use_cat: bool, ema: bool, num_features: int,
               head_json: str, rank: int, dtype: torch.dtype) -> StepShape:
    """Run steps of the real algorithm on probes and return the passes of the last one.
    ``params_json``: the run's composition fields (algorithm, imbalance and their params)."""
    per_class = max(1, PROBE_LB // num_classes)
    num_lb, num_ulb = per_class * num_classes, PROBE_ULB
    sample = (3, 4, 4) if rank == 3 else (8,) * rank
    import semibench.compose as compose
    from semibench.algorithms import Batch
    from semibench.algorithms.base import DataInfo

    head = _head_from_json(head_json, num_features, num_classes)
    model = _Probe(num_features, head, domain == "text")
    teacher = _Probe(num_features, copy.deepcopy(head), domain == "text") if ema else None
    composition, params, imbalance_params = compose.settings_composition(json.loads(params_json))
    alg = compose.create_algorithm(composition, params, imbalance_params, domain=domain,
                                   num_classes=num_classes, num_iterations=PROBE_STEPS,
                                   num_ulb=num_ulb)
    heads = alg.build_modules(num_features)
    if heads:
        model.ssl_heads = nn.ModuleDict(heads)
        if teacher is not None:
            teacher.ssl_heads = copy.deepcopy(model.ssl_heads)
    counts = torch.full((num_classes,), per_class)
    alg.attach(model, teacher, DataInfo(domain=domain, num_classes=num_classes, num_lb=num_lb,
                                        num_ulb=num_ulb, lb_class_counts=counts))
    gen = torch.Generator().manual_seed(0)
    n_ulb = batch_size * uratio

    def views(names: tuple[str, ...], n: int) -> dict[str, torch.Tensor]:
        return {v: _example(sample, dtype, n, "cpu") for v in names}

    y_lb = torch.arange(batch_size) % num_classes
    batch = Batch(x_lb=views(alg.lb_views, batch_size), y_lb=y_lb,
                  idx_lb=torch.randint(0, max(num_lb, 1), (batch_size,), generator=gen))
    if alg.ulb_views:
        batch.x_ulb = views(alg.ulb_views, n_ulb)
        batch.idx_ulb = torch.randint(0, max(num_ulb, 1), (n_ulb,), generator=gen)
        batch.y_ulb = torch.arange(n_ulb) % num_classes
    inputs = {f"lb_{v}": x for v, x in batch.x_lb.items()}
    inputs.update({f"ulb_{v}": x for v, x in batch.x_ulb.items()})
    model.train()

    def run(iteration: int) -> None:
        out = alg.forward(model, inputs, use_cat)
        alg.compute_loss(out, batch, iteration).loss.backward()

    try:
        for iteration in range(PROBE_STEPS - 1):  # past warm-ups and schedules' first steps
            run(iteration)
        for probe in (model, teacher):
            if probe is not None:
                probe.calls.clear()
        flops = _flops(lambda: run(PROBE_STEPS - 1))
    except Exception as err:  # an algorithm that cannot run on the probe: name it
        raise PlanError(f"{algorithm}: its training step could not be traced for counting "
                        f"({type(err).__name__}: {err})") from err
    calls = model.calls + (teacher.calls if teacher is not None else [])
    return StepShape(passes=tuple((c.batch, c.grad, c.backward) for c in calls),
                     head_flops=flops)


def _head_json(model: nn.Module) -> str:
    """The head's structure, as a cache key (its weights do not matter)."""
    return json.dumps([type(m).__name__ for m in model.head.modules()])


def _head_from_json(head_json: str, num_features: int, num_classes: int) -> nn.Module:
    names = json.loads(head_json)
    if names[0] == "Sequential":  # USB's Linear-GELU-Linear of the pretrained encoders
        from semibench.backbones._hf import mlp_head

        return mlp_head(num_features, num_classes)
    return nn.Linear(num_features, num_classes)
