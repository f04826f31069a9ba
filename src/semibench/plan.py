"""The cost planner (``semibench plan``): FLOPs per training step, time per job and device-hours
per task, before anything runs.

For every training job of a config's grid:

* **FLOPs per step** are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the real
  backbone, built with random weights (no download: pretrained backbones are built with
  ``pretrained=False``; BERT takes the bert-base-uncased WordPiece vocabulary that the bundled
  MiniLM package ships, with bert-base's 30,522-token embedding). Which forward and backward
  passes a step makes, at which batch sizes, comes from running the algorithm's own ``forward``
  and ``compute_loss`` on a recording stand-in of the backbone (:class:`_Probe`), so extra passes
  (VAT's power iteration, MeanTeacher's and SimMatch's EMA teachers, MixMatch's mixed batch,
  target views under ``no_grad``) are what the algorithm really does. Each recorded pass is then
  costed on the real backbone at its real batch size: on the ``meta`` device where the model
  allows it, else on the CPU at batch 1 times the batch size (BERT's attention mask reads a
  value; FLOPs of these per-sample models are linear in the batch). Counts are cached by
  (backbone, input shape, batch), so a 1,596-job grid plans in well under a minute.
  Counted: matrix products, convolutions and attention (what the counter knows); not counted:
  element-wise work, the optimiser and the EMA (they are inside the measured calibration).
  LayerDrop (HuBERT, wav2vec 2.0: p = 0.1) is switched off while counting, so their counts
  are an upper bound (the expected cost is up to 10 % lower for the transformer layers).
* **Evaluation**: a forward pass of the validation and test sets every ``eval_every``
  iterations and at the end, at ``eval_batch_size`` (sizes from the prepared ``meta.json`` when
  it exists, else the task's documented sizes, else an assumption that the output names).
* **Time** = FLOPs / achieved FLOP/s, from the calibration table (``data/calibration.csv``,
  written by ``benchmarks/speed.py --write-calibration``) for (device, backbone family, amp,
  compile). A device without a row for that family uses another family's row on the same
  device (said in the output); a device without any row is **uncalibrated**: peak FLOP/s of its
  datasheet x a stated efficiency (:data:`FALLBACK_EFFICIENCY`), marked as such.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import functools
import json
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

DEFAULT_CALIBRATION = "calibration.csv"
CALIBRATION_COLUMNS = [
    "device", "family", "backbone", "amp", "compile", "train_tflops", "eval_tflops", "setting",
    "step_ms", "step_gflops", "threads", "torch", "measured",
]  # fmt: skip
#: one calibration row per these columns (a newer measurement replaces an older one)
CALIBRATION_KEY = ("device", "backbone", "amp", "compile")
AMPS = ("none", "bf16", "fp16")
COMPILES = ("none", "default", "reduce-overhead")

#: dense peak FLOP/s of each known device from its datasheet (SXM parts; fp32 without TF32,
#: as PyTorch runs float32 matmuls by default), per precision; absent = the device lacks it
DEVICE_PEAKS: dict[str, dict[str, float]] = {
    "h200": {"none": 67e12, "bf16": 989e12, "fp16": 989e12},
    "h100": {"none": 67e12, "bf16": 989e12, "fp16": 989e12},
    "a100": {"none": 19.5e12, "bf16": 312e12, "fp16": 312e12},
    "l40s": {"none": 91.6e12, "bf16": 362e12, "fp16": 362e12},
    "v100": {"none": 15.7e12, "fp16": 125e12},
    "cpu": {"none": 0.0},
}
#: fraction of the peak that an uncalibrated device is assumed to reach, by (amp, compile).
#: From issue 9's H200 figures for a ViT-S/2 FixMatch step (0.87 TFLOP counted per step):
#: 34 ms fp32 eager = 0.38 of the fp32 peak, 6 ms bf16 + CUDA graphs = 0.15 of the bf16 peak;
#: bf16 eager and torch.compile's default mode are assumed at half and 3/4 of the graphs figure
#: (small per-op kernels, launch-bound at these batch sizes). Assumptions, not measurements.
FALLBACK_EFFICIENCY: dict[tuple[str, str], float] = {
    ("none", "none"): 0.38, ("none", "default"): 0.38, ("none", "reduce-overhead"): 0.38,
    ("bf16", "none"): 0.075, ("bf16", "default"): 0.11, ("bf16", "reduce-overhead"): 0.15,
    ("fp16", "none"): 0.075, ("fp16", "default"): 0.11, ("fp16", "reduce-overhead"): 0.15,
}
#: USB's reported cost of evaluating FixMatch on its 15 tasks (paper abstract): 39 V100-days
USB_FIXMATCH_V100_DAYS = 39.0

#: official test-set sizes (task docstrings); validation comes from ``val_per_class`` or here
TEST_SIZES: dict[str, int] = {
    "cifar10": 10_000, "cifar100": 10_000, "svhn": 26_032, "stl10": 8_000, "eurosat": 5_400,
    "tissuemnist": 47_280, "semi_aves": 4_000, "imdb": 25_000, "ag_news": 7_600,
    "amazon_review": 65_000, "yahoo_answers": 60_000, "yelp_review": 50_000, "gtzan": 1_500,
    "urbansound8k": 837, "superb_ks": 2_567, "fsdnoisy18k": 847, "esc50": 400,
    "mnist": 1_000, "newsgroups": 400, "keywords": 500,
}  # fmt: skip
#: validation sets that are the source's own split (``validation_source = "prepared"`` and no
#: per-class count): their documented sizes
PREPARED_VAL_SIZES: dict[str, int] = {
    "tissuemnist": 23_640, "semi_aves": 2_000, "gtzan": 1_500, "urbansound8k": 816,
    "superb_ks": 2_577, "fsdnoisy18k": 100, "esc50": 400,
}  # fmt: skip
#: stored image side of tasks whose views do not resize
IMAGE_SIDES: dict[str, int] = {"mnist": 28}
#: stored channels of the grey-scale image tasks (the others are RGB)
IMAGE_CHANNELS: dict[str, int] = {"mnist": 1, "tissuemnist": 1}


class PlanError(ValueError):
    """Bad planner input (unknown device, a precision the device lacks): one line."""


def backbone_family(name: str) -> str:
    """The calibration family of a backbone: vit, wrn, bert, speech or cnn."""
    for prefix, family in (("vit", "vit"), ("wrn", "wrn"), ("bert", "bert"), ("minilm", "bert"),
                           ("hubert", "speech"), ("wav2vec2", "speech"), ("cnn", "cnn")):
        if name.startswith(prefix):
            return family
    return name


# --------------------------------------------------------------------------- building models

def _offline_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``backbone_args`` for random weights without any file: pretrained off, weight
    locations dropped; BERT's tokenizer from the bundled MiniLM (the same WordPiece vocab)."""
    from semibench.config import backbone_arguments

    allowed = backbone_arguments(name)
    out = {k: v for k, v in args.items()
           if k not in ("pretrained", "pretrained_dir", "weights_dir", "cache_dir")}
    if allowed is None or "pretrained" in allowed:
        out["pretrained"] = False
    if name == "bert_base_uncased" and "tokenizer_dir" not in out:
        from semibench.backbones.minilm import bundled_minilm_dir

        out["tokenizer_dir"] = str(bundled_minilm_dir())
        out["config_overrides"] = {"vocab_size": 30522, **out.get("config_overrides", {})}
    return out


@functools.cache
def _built(name: str, args_json: str, device: str = "meta") -> tuple[nn.Module, str]:
    """The backbone with random weights (built on ``device``), and how it was built."""
    from semibench.backbones import create_backbone

    args = json.loads(args_json)
    with torch.device(device):
        model = create_backbone(name, 2, **_offline_args(name, args))
    model = model.to(device)
    encoder_config = getattr(getattr(model, "encoder", None), "config", None)
    if encoder_config is not None and getattr(encoder_config, "layerdrop", 0.0):
        encoder_config.layerdrop = 0.0  # counted without LayerDrop: an upper bound
    return model, "random weights"


def build_backbone(name: str, args: dict[str, Any],
                   device: str = "meta") -> tuple[nn.Module, str]:
    """The backbone for counting; a text backbone that cannot be built offline (no
    tokenizer) is estimated from bert-base's config (:func:`_bert_from_config`)."""
    key = json.dumps(args, sort_keys=True)
    try:
        return _built(name, key, device)
    except (FileNotFoundError, OSError) as err:
        if backbone_family(name) != "bert":
            raise PlanError(f"backbone {name} cannot be built offline for counting: {err}") from None
        return (_bert_from_config(json.dumps(args, sort_keys=True), device),
                "estimated from BertConfig")


@functools.cache
def _bert_from_config(args_json: str, device: str) -> nn.Module:
    from transformers import BertConfig, BertModel

    from semibench.backbones._hf import mean_pool, mlp_head

    args = json.loads(args_json)

    class _Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cfg = BertConfig(**args.get("config_overrides", {}))
            self.encoder = BertModel(cfg, add_pooling_layer=False)
            self.max_length = args.get("max_length", 512)
            self.num_features = cfg.hidden_size
            self.drop = nn.Dropout(0.1)
            self.head = mlp_head(cfg.hidden_size, 2)

        def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
            return mean_pool(self.encoder(input_ids=ids).last_hidden_state, self.drop)

        def reset_classifier(self, num_classes: int) -> None:
            self.head = mlp_head(self.num_features, num_classes)

    with torch.device(device):
        return _Bert().to(device)


# --------------------------------------------------------------------------- input shapes

def sample_shape(run: dict[str, Any], model: nn.Module) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape (without the batch) and dtype of one model input of ``run``'s views."""
    from semibench.tasks import create_task
    from semibench.variants import run_base_task

    task = create_task(run_base_task(run))
    aug = run["augment"]
    if task.domain == "image":
        side = aug.get("crop_size") or aug.get("resize") or IMAGE_SIDES.get(task.name, 32)
        chans = 3 if aug.get("as_rgb") else IMAGE_CHANNELS.get(task.name, 3)
        return (chans, int(side), int(side)), torch.float32
    if task.domain == "text":
        return (int(getattr(model, "max_length", 512)),), torch.long
    from semibench.augment import build_views

    rate = int(aug.get("sample_rate", 16000))
    wave = torch.zeros(1, int(round(float(aug.get("crop_seconds", 1.0)) * rate)))
    if aug.get("features", "logmel") == "waveform":
        return tuple(wave.shape[1:]), torch.float32
    view = build_views("audio", aug)["eval"]
    return tuple(view(wave, torch.Generator().manual_seed(0)).shape[1:]), torch.float32


def trimmed_text_length(model: nn.Module, task_name: str, prepared_root: Path, batch: int,
                        sample: int = 2000, draws: int = 200) -> int | None:
    """The mean token length a text backbone keeps after trimming a batch's padding (its
    longest text, rounded up to ``trim_multiple``) for random batches of ``batch`` texts (as
    training draws them), measured on up to ``sample`` prepared training texts; None without
    prepared data or trimming."""
    lengths = _token_lengths(model, task_name, prepared_root, sample)
    if lengths is None:
        return None
    rng = np.random.default_rng(0)
    longest = lengths.tokens[rng.integers(0, len(lengths.tokens), (draws, batch))].max(axis=1)
    return lengths.kept(longest)


def evaluated_text_length(model: nn.Module, task_name: str, prepared_root: Path, batch: int,
                          sample: int = 2000) -> int | None:
    """:func:`trimmed_text_length` for evaluation batches, which follow the backbone's
    ``eval_order`` (texts sorted by length: each batch keeps about its texts' own length).
    The sample stands for the whole set: sorted, it is cut into batches of ``batch`` x
    sample / set size texts. A backbone that does not sort (``sorts_eval_by_length``): random
    batches, as stored."""
    lengths = _token_lengths(model, task_name, prepared_root, sample)
    if lengths is None:
        return None
    if not getattr(model, "sorts_eval_by_length", False):
        return trimmed_text_length(model, task_name, prepared_root, batch, sample)
    chunk = max(1, round(batch * len(lengths.tokens) / lengths.total))
    ranked = np.sort(lengths.tokens)[::-1]
    return lengths.kept(ranked[::chunk])  # each batch's first (longest) text


@dataclass(frozen=True)
class _TokenLengths:
    tokens: np.ndarray  # real tokens per sampled text
    total: int  # texts in the prepared training set
    multiple: int
    max_length: int

    def kept(self, longest: np.ndarray) -> int:
        """The mean width a batch keeps, from its longest texts."""
        kept = np.minimum(-(-longest // self.multiple) * self.multiple, self.max_length)
        return int(round(float(kept.mean())))


def _token_lengths(model: nn.Module, task_name: str, prepared_root: Path,
                   sample: int) -> _TokenLengths | None:
    multiple = getattr(model, "trim_multiple", 0)
    path = Path(prepared_root) / task_name / "data.npz"
    if not multiple or not path.is_file():
        return None
    stat = path.stat()
    return _read_token_lengths(model, str(path), stat.st_mtime_ns, stat.st_size, sample)


@functools.lru_cache(maxsize=8)  # every job of a task, training and evaluation, reads it once
def _read_token_lengths(model: nn.Module, path: str, _mtime_ns: int, _size: int,
                        sample: int) -> _TokenLengths:
    with np.load(path, allow_pickle=False) as data:
        texts = np.asarray(data["train_x"]).reshape(len(data["train_x"]), -1)[:, 0]
    rng = np.random.default_rng(0)
    picked = texts[rng.permutation(len(texts))[:sample]]
    ids = model.prepare_inputs(picked)
    tokens = (ids != model.tokenizer.pad_token_id).sum(dim=1).numpy()
    return _TokenLengths(tokens, len(texts), int(model.trim_multiple), int(ids.shape[1]))


def eval_sizes(task_name: str, prepared_root: Path | None = None) -> tuple[int, int, str]:
    """(validation, test) samples evaluated at every evaluation, and where the numbers came
    from: the prepared ``meta.json``, the task's documented sizes, or an assumption."""
    from semibench.tasks import create_task

    task = create_task(task_name)
    if prepared_root is not None:
        meta_path = Path(prepared_root) / task_name / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            val = meta.get("num_val") or task.val_per_class * task.num_classes
            return int(val), int(meta["num_test"]), "prepared meta.json"
    val = task.val_per_class * task.num_classes or PREPARED_VAL_SIZES.get(task_name)
    test = TEST_SIZES.get(task_name)
    if val is not None and test is not None:
        return int(val), int(test), "documented sizes"
    pool = task.num_train or 10_000
    return int(val or pool // 10), int(test or pool // 5), "assumed (10 % / 20 % of the pool)"


# --------------------------------------------------------------------------- counting

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


# --------------------------------------------------------------------------- calibration

@dataclass(frozen=True)
class Rate:
    """Achieved FLOP/s used for one job, and where it came from."""

    train: float
    eval: float
    source: str
    calibrated: bool


def read_calibration(path: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of the calibration CSV (the shipped one by default)."""
    if path is None:
        text = resources.files("semibench").joinpath("data", DEFAULT_CALIBRATION).read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def check_device(device: str, amp: str, compile_mode: str) -> None:
    """Refuse (one line) an unknown device, precision or compile mode, or a precision the
    device lacks."""
    if device not in DEVICE_PEAKS:
        raise PlanError(f"unknown device {device!r}; known: {', '.join(DEVICE_PEAKS)}")
    if amp not in AMPS:
        raise PlanError(f"--amp {amp!r}: allowed: {', '.join(AMPS)}")
    if compile_mode not in COMPILES:
        raise PlanError(f"--compile {compile_mode!r}: allowed: {', '.join(COMPILES)}")
    if amp not in DEVICE_PEAKS[device]:
        have = ", ".join(DEVICE_PEAKS[device])
        raise PlanError(f"device {device} has no {amp} support (precisions: {have})")


def lookup_rate(rows: list[dict[str, str]], device: str, family: str, amp: str,
                compile_mode: str, backbone: str = "") -> Rate:
    """Achieved FLOP/s for (device, backbone or family, amp, compile): the row measured on
    this backbone, else the median of this family's rows on the device, else the median of
    the device's rows of other families, else peak x :data:`FALLBACK_EFFICIENCY`."""
    same = [r for r in rows if r["device"] == device and r["amp"] == amp
            and r["compile"] == compile_mode]
    exact = [r for r in same if backbone and r.get("backbone") == backbone]
    if exact:
        r = exact[-1]
        return Rate(float(r["train_tflops"]) * 1e12, float(r["eval_tflops"]) * 1e12,
                    f"calibrated ({r['setting']}, {r['measured']})", True)
    family_rows = [r for r in same if r["family"] == family]
    for group, what in ((family_rows, None), (same, family)):
        if group:
            train = statistics.median(float(r["train_tflops"]) for r in group)
            evals = statistics.median(float(r["eval_tflops"]) for r in group)
            names = ", ".join(sorted({r["setting"] for r in group}))
            where = f"calibrated on {names}" + (f", applied to {what}" if what else "")
            return Rate(train * 1e12, evals * 1e12, where, True)
    peak = DEVICE_PEAKS[device][amp]
    if peak <= 0:
        raise PlanError(f"device {device} is not calibrated for amp={amp} compile={compile_mode} "
                        "and has no datasheet peak: run benchmarks/speed.py --write-calibration")
    eff = FALLBACK_EFFICIENCY[(amp, compile_mode)]
    return Rate(peak * eff, peak * eff,
                f"uncalibrated: {peak / 1e12:.0f} TFLOP/s peak x {eff:.3f}", False)


# --------------------------------------------------------------------------- the plan

@dataclass
class JobPlan:
    task: str
    num_labels: int
    algorithm: str
    seed: int
    backbone: str
    family: str
    iterations: int
    step_flops: float
    eval_flops: float
    hours: float
    rate: Rate
    notes: list[str] = field(default_factory=list)

    @property
    def total_flops(self) -> float:
        return self.step_flops * self.iterations + self.eval_flops


def plan_job(run: dict[str, Any], device: str, amp: str | None, compile_mode: str | None,
             rows: list[dict[str, str]], prepared_root: Path | None = None) -> JobPlan:
    """FLOPs and time of one resolved training run; ``amp`` / ``compile_mode`` override the
    run's own ``train.amp`` / ``train.compile`` when given (the CPU always runs fp32 eager)."""
    from semibench.spec import run_label
    from semibench.tasks import create_task
    from semibench.train.config import TrainConfig
    from semibench.train.loop import has_batch_norm
    from semibench.variants import run_base_task

    base = run_base_task(run)  # a variant's registered task: its data, classes and sizes
    task = create_task(base)
    cfg = TrainConfig.from_dict(run["train"])
    name, args = run["backbone"], run.get("backbone_args", {})
    args_json = json.dumps(args, sort_keys=True)
    model, how = build_backbone(name, args)
    shape, dtype = sample_shape(run, model)
    num_lb = run["num_labels"]
    composed = {k: run[k] for k in ("algorithm", "imbalance", "algorithm_params",
                                    "imbalance_params") if k in run}  # semibench.compose reads
    shape_of_step = step_shape(
        run["algorithm"], json.dumps(composed, sort_keys=True), task.domain,
        task.num_classes, cfg.batch_size, cfg.uratio, cfg.use_cat and has_batch_norm(model),
        cfg.ema_m > 0,
        int(model.num_features), _head_json(model), len(shape), dtype)
    notes = [] if how == "random weights" else [how]
    step = float(shape_of_step.head_flops)
    eval_shape = shape
    if task.domain == "text":
        kept = evaluated = None
        if prepared_root is not None:
            kept = trimmed_text_length(model, base, Path(prepared_root),
                                       cfg.batch_size * max(cfg.uratio, 1))
            evaluated = evaluated_text_length(model, base, Path(prepared_root),
                                              cfg.eval_batch_size)
        if kept is not None and evaluated is not None:
            notes.append(f"{base}: text trimmed to {kept} (evaluation {evaluated}) of "
                         f"{shape[0]} tokens (measured)")
            shape, eval_shape = (kept,), (evaluated,)
        elif getattr(model, "trim_multiple", 0):
            notes.append(f"text counted at max_length ({shape[0]} tokens): an upper bound, since "
                         "padding is trimmed per batch; with prepared data (--prepared-root) the "
                         "plan measures them")
    fwd, bwd, _ = per_sample_flops(name, args_json, shape, dtype, True)
    for batch, _grad, backward in shape_of_step.passes:
        step += batch * (fwd + (bwd if backward else 0))
    n_val, n_test, source = eval_sizes(base, prepared_root)
    if source != "documented sizes":
        notes.append(f"eval sizes {source}")
    evals = math.ceil(cfg.iterations / cfg.eval_every)
    fwd_eval, _, _ = per_sample_flops(name, args_json, eval_shape, dtype, False)
    eval_flops = fwd_eval * (n_val + n_test) * evals
    run_amp = "none" if device == "cpu" else (amp or cfg.amp)
    run_compile = "none" if device == "cpu" else (compile_mode or getattr(cfg, "compile", "none"))
    check_device(device, run_amp, run_compile)
    rate = lookup_rate(rows, device, backbone_family(name), run_amp, run_compile, name)
    seconds = step * cfg.iterations / rate.train + eval_flops / rate.eval
    return JobPlan(run["task"], num_lb, run_label(run["algorithm"], run.get("imbalance")),
                   run["seed"], name,
                   backbone_family(name), cfg.iterations, step, eval_flops, seconds / 3600,
                   rate, notes)


@dataclass
class Plan:
    device: str
    amp: str
    compile: str
    jobs: list[JobPlan]
    seconds: float  # how long planning took

    @property
    def total_hours(self) -> float:
        return sum(j.hours for j in self.jobs)

    @property
    def calibrated(self) -> bool:
        return all(j.rate.calibrated for j in self.jobs)


def make_plan(config: dict[str, Any], device: str, amp: str | None = None,
              compile_mode: str | None = None, algorithms: list[str] | None = None,
              calibration: str | Path | None = None,
              prepared_root: Path | None = None) -> Plan:
    """Plan every training job of a validated config (``algorithms`` narrows the grid)."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the counting runs tiny ops: more threads only wait for each other
    try:
        return _make_plan(config, device, amp, compile_mode, algorithms, calibration,
                          prepared_root, started)
    finally:
        torch.set_num_threads(threads)


def _make_plan(config: dict[str, Any], device: str, amp: str | None, compile_mode: str | None,
               algorithms: list[str] | None, calibration: str | Path | None,
               prepared_root: Path | None, started: float) -> Plan:
    from semibench.config import run_config, run_grid

    config = copy.deepcopy(config)
    if algorithms:
        config["algorithms"] = list(algorithms)
        for settings in config["tasks"].values():
            settings.pop("algorithms", None)
    check_device(device, "none" if device == "cpu" else (amp or "none"), compile_mode or "none")
    rows = read_calibration(calibration)
    jobs = [plan_job(run_config(config, *job), device, amp, compile_mode, rows, prepared_root)
            for job in run_grid(config)]
    return Plan(device, "none" if device == "cpu" else (amp or "per config"),
                "none" if device == "cpu" else (compile_mode or "per config"), jobs,
                time.perf_counter() - started)


def format_plan(plan: Plan) -> str:
    """The per-task table, totals and the calibration used, as Markdown-style text."""
    tasks: dict[str, list[JobPlan]] = {}
    for job in plan.jobs:
        tasks.setdefault(job.task, []).append(job)
    lines = [f"# plan: {len(plan.jobs)} training jobs on {plan.device} (amp {plan.amp}, "
             f"compile {plan.compile})", "",
             "| task | backbone | jobs | iterations | GFLOP/step | eval TFLOP/job | h/job | "
             f"{plan.device}-hours | rate |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for task, jobs in tasks.items():
        hours = sum(j.hours for j in jobs)
        steps = sorted(j.step_flops for j in jobs)
        step_text = (f"{steps[0] / 1e9:,.0f}" if steps[0] == steps[-1]
                     else f"{steps[0] / 1e9:,.0f}-{steps[-1] / 1e9:,.0f}")
        rates = sorted({j.rate.source for j in jobs})
        lines.append(
            f"| {task} | {jobs[0].backbone} | {len(jobs)} | {jobs[0].iterations:,} | "
            f"{step_text} | {sum(j.eval_flops for j in jobs) / len(jobs) / 1e12:,.0f} | "
            f"{hours / len(jobs):,.2f} | {hours:,.1f} | {'; '.join(rates)} |")
    total = plan.total_hours
    lines += ["", f"total: {total:,.1f} {plan.device}-hours = {total / 24:,.2f} "
              f"{plan.device}-days for {len(plan.jobs)} jobs "
              f"(planned in {plan.seconds:.1f} s)"]
    train = sum(j.step_flops * j.iterations for j in plan.jobs)
    evals = sum(j.eval_flops for j in plan.jobs)
    lines.append(f"FLOPs: {train / 1e18:,.1f} EFLOP training + {evals / 1e18:,.1f} EFLOP "
                 f"evaluation ({100 * evals / max(train + evals, 1):.0f} % evaluation)")
    if plan.jobs and {j.algorithm for j in plan.jobs} == {"fixmatch"}:
        lines.append(f"reference: USB reports {USB_FIXMATCH_V100_DAYS:g} V100-days "
                     f"({USB_FIXMATCH_V100_DAYS * 24:,.0f} V100-hours) to evaluate FixMatch on "
                     f"its 15 tasks (paper abstract); this plan: {total / 24:,.2f} "
                     f"{plan.device}-days")
    notes = sorted({n for j in plan.jobs for n in j.notes})
    if notes:
        lines.append("notes: " + "; ".join(notes))
    if not plan.calibrated:
        lines.append(f"UNCALIBRATED: {plan.device} has no measured row in the calibration "
                     "table for these settings; the times use datasheet peak x the assumed "
                     "efficiency above (run benchmarks/device_speed.sh on the device and "
                     "ship its calibration.csv rows)")
    return "\n".join(lines)


def jobs_csv(plan: Plan, path: str | Path) -> None:
    """One row per job: FLOPs, hours and the rate source."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "num_labels", "algorithm", "seed", "backbone", "family",
                         "iterations", "step_gflops", "eval_tflops", "hours", "rate_source"])
        for j in plan.jobs:
            writer.writerow([j.task, j.num_labels, j.algorithm, j.seed, j.backbone, j.family,
                             j.iterations, f"{j.step_flops / 1e9:.3f}",
                             f"{j.eval_flops / 1e12:.3f}", f"{j.hours:.4f}", j.rate.source])


def as_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    return {"device": plan.device, "amp": plan.amp, "compile": plan.compile,
            "total_hours": plan.total_hours, "calibrated": plan.calibrated,
            "jobs": [{**{k: v for k, v in dataclasses.asdict(j).items() if k != "rate"},
                      "rate": dataclasses.asdict(j.rate)} for j in plan.jobs]}
