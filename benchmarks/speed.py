"""Time a FixMatch training iteration of each USB setting, SemiBench next to semilearn 0.3.2.

    .venv/bin/python benchmarks/speed.py --quick --threads 2 --settings vit_s2_32,wrn_28_2
    .venv/bin/python benchmarks/speed.py --device cuda --write-calibration   # on a GPU

SemiBench's full step is ``Trainer.train_step`` (the real trainer, on synthetic prepared data
written to a temporary directory: random uint8 images, random waveforms, texts of random
vocabulary words long enough to fill 512 tokens). Its split into data / forward / backward /
optimizer comes from a separate timing harness around the same pieces (``make_batch``,
``algorithm.forward`` + ``compute_loss``, ``backward``, optimiser + scheduler + EMA), with
``torch.cuda.synchronize`` between the phases on a GPU, so the split steps are slower than the
full ones there; "data" is the inline cost of the views, which prefetching may hide.

semilearn's side is its own code at the same sizes: its nets (random weights), its FixMatch
``train_step`` and hooks (``ParamUpdateHook``, ``EMAHook``; on a GPU also its ``TimerHook``,
which synchronises twice per step), its ``BasicDataset`` with the transforms of its CIFAR /
STL-10 / Semi-Aves loaders and its ``get_data_loader`` (``--sl-workers`` loader workers for
the labelled batch, twice that for the unlabelled one, as USB does). Images are in-memory
arrays (Semi-Aves' JPEG decoding is not timed). For BERT and HuBERT only semilearn's model step
is timed (pre-built tensors: its collators load a tokenizer / feature extractor from the
Hugging Face hub). semilearn runs in fp32 eager (USB's default ``amp: False``).

The two sides are interleaved: each round runs a block of full steps of one side, then of the
other (the order alternates), so drifting load hits both; the ratio is taken per round and
reported as median and inter-quartile range. Results go to ``benchmarks/out/`` (CSV + Markdown);
``--write-calibration`` writes achieved FLOP/s rows for ``semibench plan``.

semilearn is imported from ``benchmarks/.semilearn`` (``make bench-deps``); a few modules it
imports at package import but never calls in this step (scikit-image for MedMNIST montages,
TensorBoard's SummaryWriter, wandb, aim) are replaced by empty stand-ins.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SEMILEARN_DIR = ROOT / "benchmarks" / ".semilearn"
OUT_DIR = ROOT / "benchmarks" / "out"


# --------------------------------------------------------------------------- settings

@dataclass
class Setting:
    """One USB setting: the USB task whose protocol it takes, and the sizes."""

    name: str
    task: str  # the USB task whose views and trainer settings are used
    backbone: str
    batch_size: int = 8
    uratio: int = 1
    backbone_args: dict[str, Any] = field(default_factory=dict)
    sl_net: str = ""  # semilearn's net name ("" = no semilearn side)
    sl_kind: str = "image"  # image (full step with loader) or tensors (model step)
    stored_side: int = 32  # stored image side
    seconds: float = 4.0  # audio clip length
    text_len: int = 512
    tiny: dict[str, Any] = field(default_factory=dict)  # backbone_args of --tiny


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("vit_s2_32", "cifar100", "vit_small_patch2_32", sl_net="vit_small_patch2_32",
            tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("vit_b16_96", "stl10", "vit_base_patch16_96", sl_net="vit_base_patch16_96",
            stored_side=96, tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("vit_s16_224", "semi_aves", "vit_small_patch16_224",
            sl_net="vit_small_patch16_224", stored_side=256,
            tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("bert_base", "imdb", "bert_base_uncased", sl_net="bert_base_uncased",
            sl_kind="tensors",
            tiny={"config_overrides": {"num_hidden_layers": 1, "intermediate_size": 256}}),
    Setting("hubert_4s", "urbansound8k", "hubert_base", sl_net="hubert_base",
            sl_kind="tensors", seconds=4.0,
            tiny={"config_overrides": {"num_hidden_layers": 1, "intermediate_size": 256,
                                       "conv_dim": [32] * 7, "layerdrop": 0.0}}),
    Setting("wrn_28_2", "cifar10", "wrn_28_2", batch_size=64, uratio=7, sl_net="wrn_28_2"),
]}


def quick_setting(s: Setting, wrn_full: bool) -> Setting:
    """Reduced sizes for the CPU: WRN-28-2 at 16 + 112 (unless ``wrn_full``), BERT at 128
    tokens, HuBERT at 1 s."""
    if s.name == "wrn_28_2" and not wrn_full:
        return dataclasses.replace(s, batch_size=16)
    if s.name == "bert_base":
        return dataclasses.replace(s, text_len=128, backbone_args={"max_length": 128})
    if s.name == "hubert_4s":
        return dataclasses.replace(s, seconds=1.0)
    return s


def tiny_setting(s: Setting) -> Setting:
    """Toy sizes for a dry run of the machinery (``--tiny``)."""
    return dataclasses.replace(s, batch_size=2, uratio=1, text_len=32, seconds=0.5,
                               backbone_args={**s.backbone_args, **s.tiny,
                                              **({"max_length": 32}
                                                 if s.backbone.startswith("bert") else {})})


def label(s: Setting) -> str:
    n = f"{s.batch_size}+{s.batch_size * s.uratio}"
    extra = {"bert_base": f", {s.text_len} tok", "hubert_4s": f", {s.seconds:g} s"}.get(s.name, "")
    return f"{s.name} ({n}{extra})"


# --------------------------------------------------------------------------- SemiBench side

def _bert_tokenizer_dir() -> str:
    from semibench.backbones.minilm import bundled_minilm_dir

    return str(bundled_minilm_dir())  # bert-base-uncased's WordPiece vocabulary


def semibench_run(s: Setting, device: str, amp: str, compile_mode: str) -> dict[str, Any]:
    """The resolved run settings of the USB task, with this setting's sizes and random
    weights."""
    from semibench.config import backbone_arguments, check_config, run_config

    config = check_config({"algorithms": ["fixmatch"], "seeds": [0],
                           "tasks": {s.task: {"num_labels": [_num_labels(s.task)]}}})
    run = run_config(config, s.task, _num_labels(s.task), "fixmatch", 0)
    args = {**run["backbone_args"], **s.backbone_args}
    allowed = backbone_arguments(s.backbone)
    if allowed is None or "pretrained" in allowed:
        args["pretrained"] = False
    if s.backbone.startswith("bert"):
        args.update(tokenizer_dir=_bert_tokenizer_dir(),
                    config_overrides={"vocab_size": 30522, **args.get("config_overrides", {})})
    run["backbone_args"] = args
    if s.backbone.startswith(("hubert", "wav2vec2")):
        run["augment"] = {**run["augment"], "crop_seconds": s.seconds}
    run["train"].update(batch_size=s.batch_size, uratio=s.uratio, device=device, amp=amp,
                        iterations=100_000, eval_every=100_000)
    if compile_mode != "none" or "compile" in run["train"]:
        run["train"]["compile"] = compile_mode
    return run


def _num_labels(task: str) -> int:
    from semibench.tasks import create_task

    t = create_task(task)
    return t.label_budgets[0] if t.fixed_labelled else 4 * t.num_classes


def write_synthetic(s: Setting, root: Path, n: int = 256) -> tuple[Path, Path]:
    """A prepared directory and split of random data in the task's stored format."""
    from semibench.splits import Split, write_split
    from semibench.tasks import create_task
    from semibench.tasks.base import write_prepared

    task = create_task(s.task)
    rng = np.random.default_rng(0)
    classes = task.num_classes
    n = max(n, 2 * classes)
    y = np.arange(n) % classes
    if task.domain == "image":
        chans = 3
        x = rng.integers(0, 256, (n, chans, s.stored_side, s.stored_side), dtype=np.uint8)
    elif task.domain == "text":
        words = ["semi", "supervised", "benchmark", "review", "movie", "great", "plot", "actor",
                 "story", "boring", "music", "scene", "watch", "again", "never", "always"]
        x = np.array([" ".join(rng.choice(words, s.text_len + 8)) for _ in range(n)])
    else:
        x = (rng.standard_normal((n, int(s.seconds * 16000))) * 0.1).astype(np.float32)
    prepared = root / "prepared"
    val = np.arange(min(n // 4, 4 * classes))
    extra: dict[str, Any] = {}
    if task.domain == "audio":
        extra["sample_rate"] = 16000
    write_prepared(prepared, task=task, train_x=x, train_y=y, test_x=x[:classes],
                   test_y=y[:classes], raw_checksums={}, extra=extra,
                   val_x=x[val], val_y=y[val])
    labelled = list(range(len(val), len(val) + max(classes, s.batch_size)))
    split = Split(task=s.task, num_labels=len(labelled), seed=0, labelled=labelled,
                  unlabelled=list(range(n)), validation=[], include_labelled_in_unlabelled=True,
                  validation_source="prepared")
    write_split(split, root / "split.json")
    return prepared, root / "split.json"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class SemiBenchSide:
    """The real trainer on synthetic data; ``full`` steps and ``split`` (timed) steps."""

    name = "SemiBench"

    def __init__(self, s: Setting, device: str, amp: str, compile_mode: str, root: Path):
        from semibench.train.loop import Trainer

        prepared, split = write_synthetic(s, root)
        out = root / f"run-{amp}-{compile_mode}"
        out.mkdir()
        self.device = device
        self.trainer = Trainer(semibench_run(s, device, amp, compile_mode), prepared, split, out)
        self.step = 0
        self.split_step = 50_000

    def full(self, n: int) -> float:
        """Seconds per step over ``n`` consecutive ``Trainer.train_step`` calls, fed as
        ``Trainer.fit`` feeds them: by the trainer's prefetcher (batch t + 1 is built while
        step t runs) when it has one and ``train.prefetch`` is on."""
        tr = self.trainer
        prefetch = None
        try:
            from semibench.train.prefetch import Prefetcher

            prefetch = Prefetcher(tr.make_batch, enabled=getattr(tr.cfg, "prefetch", False),
                                  device=tr.device)
        except ImportError:  # an older trainer: views inline
            pass
        _sync(self.device)
        start = time.perf_counter()
        try:
            for i in range(n):
                if prefetch is None:
                    tr.train_step(self.step)
                else:
                    following = self.step + 1 if i + 1 < n else None
                    tr.train_step(self.step, prefetch.get(self.step, following))
                self.step += 1
            _sync(self.device)
        finally:
            if prefetch is not None:
                prefetch.close()
        return (time.perf_counter() - start) / n

    def split(self) -> dict[str, float]:
        """One step in phases (seconds each), synchronised between phases."""
        tr, dev = self.trainer, self.device
        step = self.split_step
        self.split_step += 1
        t = _Phases(dev)
        batch = _move(tr.make_batch(step), torch.device(dev))
        t.mark("data")
        tr.train_step(step, batch, phase=t.mark)  # the trainer's own step, timed by phase
        return t.times

    def eval_seconds(self, batch: int, reps: int = 3) -> float:
        """Seconds per eval forward of ``batch`` samples (model only, no views)."""
        tr = self.trainer
        x = tr.x_val[:1].repeat(batch, *([1] * (tr.x_val.dim() - 1)))
        gen = torch.Generator().manual_seed(0)
        x = tr.views["eval"](x, gen).to(self.device)
        model = tr.ema.model if tr.ema is not None else tr.model
        model.eval()
        dtype = getattr(tr, "autocast_dtype", None)
        times = []
        with torch.no_grad(), torch.autocast(torch.device(self.device).type, dtype=dtype,
                                             enabled=dtype is not None):
            for _ in range(reps + 1):
                _sync(self.device)
                start = time.perf_counter()
                model(x)
                _sync(self.device)
                times.append(time.perf_counter() - start)
        return statistics.median(times[1:])


def _is_compiled(trainer: Any) -> bool:
    """Whether the trainer compiled its model: its own record (``Trainer.compiled``, the mode
    really used), else a compiled module or ``forward_features``."""
    from torch._dynamo.eval_frame import OptimizedModule

    recorded = getattr(trainer, "compiled", None)
    if isinstance(recorded, str):
        return recorded not in ("", "none")
    model = trainer.model
    return (getattr(model, "_compiled_call_impl", None) is not None
            or isinstance(model, OptimizedModule)
            or hasattr(getattr(model, "forward_features", None), "_torchdynamo_orig_callable"))


def _move(batch: Any, device: torch.device) -> Any:
    batch.x_lb = {k: v.to(device, non_blocking=True) for k, v in batch.x_lb.items()}
    batch.x_ulb = {k: v.to(device, non_blocking=True) for k, v in batch.x_ulb.items()}
    for name in ("y_lb", "idx_lb", "idx_ulb", "y_ulb"):
        value = getattr(batch, name)
        if value is not None:
            setattr(batch, name, value.to(device))
    return batch


class _Phases:
    """Wall-clock seconds of consecutive phases, synchronising the device at each mark."""

    def __init__(self, device: str):
        self.device = device
        self.times: dict[str, float] = {}
        _sync(device)
        self.last = time.perf_counter()

    def mark(self, name: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now


# --------------------------------------------------------------------------- semilearn side

def import_semilearn(path: Path = SEMILEARN_DIR) -> Any:
    """semilearn from ``path`` (``make bench-deps``), with stand-ins for modules it imports
    but this benchmark never calls. Raises ImportError saying what is missing."""
    if not (path / "semilearn").is_dir():
        raise ImportError(f"semilearn is not installed in {path}: run `make bench-deps`")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

    class _Unused:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

    stand_ins = {"skimage": {}, "skimage.util": {"montage": _Unused},
                 "torch.utils.tensorboard": {"SummaryWriter": _Unused},
                 "wandb": {}, "aim": {"Run": _Unused, "Text": _Unused}}
    for name, attrs in stand_ins.items():
        try:
            __import__(name)
        except Exception:  # absent (or unusable, e.g. TensorBoard without its package)
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
    with contextlib.redirect_stdout(sys.stderr):
        import semilearn
        from semilearn.algorithms.fixmatch import FixMatch  # noqa: F401 (registers it)
    return semilearn


def _sl_transforms(s: Setting, side: int) -> tuple[Any, Any]:
    """semilearn's weak and strong transforms, as its CIFAR/STL-10 (``cifar.py``,
    ``stl10.py``) and Semi-Aves (``aves.py``) loaders build them."""
    from semilearn.datasets.augmentation import RandAugment, RandomResizedCropAndInterpolation
    from torchvision import transforms

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if s.task == "semi_aves":
        crop_ratio = 0.875
        resize = (int(math.floor(side / crop_ratio)),) * 2
        weak = transforms.Compose([transforms.Resize(resize), transforms.RandomCrop((side, side)),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                   transforms.Normalize(mean, std)])
        strong = transforms.Compose([transforms.Resize(resize),
                                     RandomResizedCropAndInterpolation((side, side)),
                                     transforms.RandomHorizontalFlip(), RandAugment(3, 10),
                                     transforms.ToTensor(), transforms.Normalize(mean, std)])
        return weak, strong
    pad = int(side * (1 - 0.875))
    common = [transforms.Resize(side),
              transforms.RandomCrop(side, padding=pad, padding_mode="reflect"),
              transforms.RandomHorizontalFlip()]
    weak = transforms.Compose([*common, transforms.ToTensor(), transforms.Normalize(mean, std)])
    strong = transforms.Compose([*common, RandAugment(3, 5), transforms.ToTensor(),
                                 transforms.Normalize(mean, std)])
    return weak, strong


@contextlib.contextmanager
def _random_pretrained(s: Setting) -> Iterator[None]:
    """semilearn's BERT / HuBERT classes call ``from_pretrained(hub name)``: build the same
    architecture with random weights instead (no download)."""
    from transformers import BertConfig, BertModel, HubertConfig, HubertModel

    saved = BertModel.from_pretrained, HubertModel.from_pretrained
    over = s.backbone_args.get("config_overrides", {})
    BertModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(BertConfig(**over)))
    HubertModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(HubertConfig(**over)))
    try:
        yield
    finally:
        BertModel.from_pretrained, HubertModel.from_pretrained = saved


class SemilearnSide:
    """semilearn 0.3.2's FixMatch at the same sizes, stepped as its ``train()`` loop does."""

    name = "semilearn"

    def __init__(self, s: Setting, device: str, workers: int, tiny: bool):
        import_semilearn()
        from semilearn.algorithms.fixmatch import FixMatch
        from semilearn.core.utils import get_net_builder
        from semilearn.datasets.cv_datasets.datasetbase import BasicDataset

        self.device, self.s = device, s
        classes = 10 if s.task in ("cifar10", "stl10", "urbansound8k") else 2 if s.task == "imdb" \
            else 100 if s.task == "cifar100" else 200
        side = {"vit_s2_32": 32, "vit_b16_96": 96, "vit_s16_224": 224, "wrn_28_2": 32}.get(
            s.name, 32)
        classic = s.backbone.startswith("wrn")
        args = argparse.Namespace(
            num_classes=classes, ema_m=0.999, epoch=1, num_train_iter=1_000_000,
            num_eval_iter=10**9, num_log_iter=10**9, ulb_loss_ratio=1.0,
            use_cat=s.sl_kind == "image", amp=False, clip_grad=0.0, save_name="bench",
            save_dir=tempfile.gettempdir(), resume=False, algorithm="fixmatch", gpu=None,
            rank=0, distributed=False, world_size=1, batch_size=s.batch_size,
            uratio=s.uratio, eval_batch_size=16, train_sampler="RandomSampler",
            num_workers=workers, optim="SGD" if classic else "AdamW",
            lr=0.03 if classic else 5e-4, momentum=0.9, weight_decay=5e-4,
            layer_decay=1.0 if classic else 0.5, num_warmup_iter=0, use_pretrain=False,
            pretrain_path="", use_wandb=False, use_aim=False, T=0.5, p_cutoff=0.95,
            hard_label=True, net=s.sl_net, net_from_name=False, img_size=side,
            crop_ratio=0.875, max_length=s.text_len, include_lb_to_ulb=True,
        )
        datasets = None
        if s.sl_kind == "image":
            n = 256
            rng = np.random.default_rng(0)
            data = rng.integers(0, 256, (n, s.stored_side, s.stored_side, 3), dtype=np.uint8)
            targets = (np.arange(n) % classes).tolist()
            weak, strong = _sl_transforms(s, side)
            datasets = {
                "train_lb": BasicDataset("fixmatch", data, targets, classes, weak, False, strong),
                "train_ulb": BasicDataset("fixmatch", data, targets, classes, weak, True, strong),
                "eval": BasicDataset("fixmatch", data[:16], targets[:16], classes, weak, False),
                "test": None,
            }

        class BenchFixMatch(FixMatch):
            def set_dataset(self) -> Any:
                return datasets

            def set_data_loader(self) -> Any:
                if datasets is None:
                    return None
                return super().set_data_loader()

            def process_batch(self, input_args: Any = None, **kwargs: Any) -> dict[str, Any]:
                # semilearn's process_batch with .to(device) in place of .cuda(gpu)
                if input_args is None:
                    import inspect

                    input_args = list(inspect.signature(self.train_step).parameters)
                out = {}
                for arg, var in kwargs.items():
                    if arg not in input_args or var is None:
                        continue
                    out[arg] = ({k: v.to(device) for k, v in var.items()}
                                if isinstance(var, dict) else var.to(device))
                return out

        builder = get_net_builder(s.sl_net, False)
        if tiny and s.sl_kind == "image" and not classic:
            builder = _tiny_vit_builder(s, side)
        with _random_pretrained(s), contextlib.redirect_stdout(sys.stderr):
            alg = BenchFixMatch(args, builder, tb_log=None, logger=None)
        alg.model, alg.ema_model = alg.model.to(device), alg.ema_model.to(device)
        if not device.startswith("cuda"):  # its TimerHook records CUDA events
            alg.hooks_dict.pop("TimerHook", None)
        alg.model.train()
        with contextlib.redirect_stdout(sys.stderr):
            alg.call_hook("before_run")
        self.alg = alg
        if datasets is not None:
            self.lb_iter = iter(alg.loader_dict["train_lb"])
            self.ulb_iter = iter(alg.loader_dict["train_ulb"])
        else:
            self.tensors = _sl_tensors(s, classes)

    def _data(self) -> dict[str, Any]:
        if self.s.sl_kind == "image":
            return self.alg.process_batch(**next(self.lb_iter), **next(self.ulb_iter))
        return self.alg.process_batch(**self.tensors)

    def full(self, n: int) -> float:
        """Seconds per step of semilearn's loop body: hooks, ``train_step``, hooks."""
        alg = self.alg
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(n):
            alg.call_hook("before_train_step")
            alg.out_dict, alg.log_dict = alg.train_step(**self._data())
            alg.call_hook("after_train_step")
            alg.it += 1
        _sync(self.device)
        return (time.perf_counter() - start) / n

    def split(self) -> dict[str, float]:
        """One step in phases; ``ParamUpdateHook``'s fp32 path is inlined to time it."""
        alg = self.alg
        t = _Phases(self.device)
        data = self._data()
        t.mark("data")
        alg.out_dict, alg.log_dict = alg.train_step(**data)
        t.mark("forward")
        alg.out_dict["loss"].backward()
        t.mark("backward")
        alg.optimizer.step()
        alg.scheduler.step()
        alg.model.zero_grad()
        for name, hook in alg.hooks_dict.items():  # EMA (and the others, idle here)
            if name not in ("ParamUpdateHook", "TimerHook"):
                hook.after_train_step(alg)
        alg.it += 1
        t.mark("optimizer")
        return t.times


def _tiny_vit_builder(s: Setting, side: int) -> Callable[..., Any]:
    from semilearn.nets.vit.vit import VisionTransformer

    patch = {32: 2, 96: 16, 224: 16}[side]

    def build(num_classes: int, **kwargs: Any) -> Any:
        return VisionTransformer(img_size=side, patch_size=patch, num_classes=num_classes,
                                 **s.tiny)

    return build


def _sl_tensors(s: Setting, classes: int) -> dict[str, Any]:
    """Pre-built model inputs for semilearn's text / audio model step."""
    n_ulb = s.batch_size * s.uratio
    y = torch.arange(s.batch_size) % classes
    if s.sl_kind == "tensors" and s.backbone.startswith("bert"):
        def ids(n: int) -> dict[str, torch.Tensor]:
            x = torch.randint(1000, 30000, (n, s.text_len))
            return {"input_ids": x, "attention_mask": torch.ones_like(x),
                    "token_type_ids": torch.zeros_like(x)}

        return {"x_lb": ids(s.batch_size), "y_lb": y, "x_ulb_w": ids(n_ulb),
                "x_ulb_s": ids(n_ulb)}
    length = int(s.seconds * 16000)
    return {"x_lb": torch.randn(s.batch_size, length), "y_lb": y,
            "x_ulb_w": torch.randn(n_ulb, length), "x_ulb_s": torch.randn(n_ulb, length)}


# --------------------------------------------------------------------------- measuring

def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[0], q[2]


@dataclass
class Result:
    setting: str
    mode: str
    side: str
    step_ms: list[float] = field(default_factory=list)
    split_ms: dict[str, list[float]] = field(default_factory=dict)
    ratio: list[float] = field(default_factory=list)  # semilearn / SemiBench per round
    eval_ms_per_sample: float = float("nan")
    gflops: float = float("nan")
    eval_gflops_per_sample: float = float("nan")
    batch: str = ""
    note: str = ""


def step_gflops(s: Setting) -> tuple[float, float]:
    """Counted GFLOPs of a training step and of one eval sample (``semibench.plan``)."""
    from semibench.plan import plan_job

    run = semibench_run(s, "cpu", "none", "none")
    job = plan_job(run, "cpu", "none", "none",
                   [{"device": "cpu", "family": "x", "amp": "none", "compile": "none",
                     "train_tflops": "1", "eval_tflops": "1", "setting": "", "measured": ""}])
    from semibench.plan import build_backbone, per_sample_flops, sample_shape

    model, _ = build_backbone(run["backbone"], run["backbone_args"])
    shape, dtype = sample_shape(run, model)
    fwd, _, _ = per_sample_flops(run["backbone"], json.dumps(run["backbone_args"],
                                                            sort_keys=True), shape, dtype, False)
    return job.step_flops / 1e9, fwd / 1e9


def bench_setting(s: Setting, mode: tuple[str, str], args: argparse.Namespace,
                  root: Path, log: Callable[[str], None]) -> list[Result]:
    """Interleaved rounds of both sides for one setting and mode."""
    amp, compile_mode = mode
    mode_name = f"{amp}/{compile_mode}"
    sb = SemiBenchSide(s, args.device, amp, compile_mode, root)
    sides: list[Any] = [sb]
    note = ""
    with_sl = (not args.no_semilearn and s.sl_net and amp == "none" and compile_mode == "none")
    if with_sl:
        try:
            sides.append(SemilearnSide(s, args.device, args.sl_workers, args.tiny))
        except Exception as err:  # say exactly why, time SemiBench alone
            note = f"semilearn not timed: {type(err).__name__}: {err}"
            log(note)
    results = {side.name: Result(s.name, mode_name, side.name, batch=label(s)) for side in sides}
    start = time.perf_counter()
    for side in sides:  # warm-up (and compilation)
        side.full(args.warmup)
        side.split()
    if compile_mode != "none":
        note = (note + "; " if note else "") + (
            f"warm-up incl. compilation {time.perf_counter() - start:.0f} s"
            if _is_compiled(sb.trainer)
            else "train.compile was set but the trainer did not compile the model (eager): "
            + "; ".join(getattr(sb.trainer, "fallbacks", [])))
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        per_round: dict[str, float] = {}
        for side in order:
            per_round[side.name] = side.full(args.steps)
            results[side.name].step_ms.append(per_round[side.name] * 1000)
            if args.split_every and r % args.split_every == 0:
                for k, v in side.split().items():
                    results[side.name].split_ms.setdefault(k, []).append(v * 1000)
        if len(sides) == 2:
            results["SemiBench"].ratio.append(per_round["semilearn"] / per_round["SemiBench"])
        log(f"  round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v * 1000:,.0f} ms/it" for k, v in per_round.items()))
    out = list(results.values())
    sb_result = results["SemiBench"]
    sb_result.note = note
    try:
        sb_result.gflops, sb_result.eval_gflops_per_sample = step_gflops(s)
        evb = 16 if not args.tiny else 4
        sb_result.eval_ms_per_sample = sb.eval_seconds(evb) * 1000 / evb
    except Exception as err:  # counting is a bonus here; the plan tests cover it
        sb_result.note += f"; FLOPs not counted: {err}"
    return out


def summarise(results: list[Result]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        med, q1, q3 = quantiles(r.step_ms)
        row: dict[str, Any] = {"setting": r.setting, "batch": r.batch, "mode": r.mode,
                               "side": r.side, "steps_timed": len(r.step_ms),
                               "ms_per_it": med, "ms_q1": q1, "ms_q3": q3}
        total = sum(statistics.median(v) for v in r.split_ms.values()) if r.split_ms else 0
        for phase in ("data", "forward", "backward", "optimizer"):
            v = r.split_ms.get(phase)
            row[f"{phase}_ms"] = statistics.median(v) if v else float("nan")
        row["data_share"] = (row["data_ms"] / total) if total else float("nan")
        if r.ratio:
            row["ratio_median"], row["ratio_q1"], row["ratio_q3"] = quantiles(r.ratio)
        row["gflops_per_step"] = r.gflops
        row["achieved_tflops"] = r.gflops / med if med == med and med > 0 else float("nan")
        row["eval_ms_per_sample"] = r.eval_ms_per_sample
        row["eval_gflops_per_sample"] = r.eval_gflops_per_sample
        row["note"] = r.note
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| setting | mode | side | ms/it median [IQR] | data / fwd / bwd / opt ms (split) "
             "| data share | semilearn / SemiBench median [IQR] | TFLOP/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (f"{r['ratio_median']:.2f} [{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}]"
                 if "ratio_median" in r else "")
        split = " / ".join(f"{r[f'{p}_ms']:,.0f}" for p in ("data", "forward", "backward",
                                                           "optimizer"))
        share = f"{100 * r['data_share']:.1f} %" if r["data_share"] == r["data_share"] else ""
        tf = f"{r['achieved_tflops']:.3f}" if r["achieved_tflops"] == r["achieved_tflops"] else ""
        lines.append(f"| {r['batch']} | {r['mode']} | {r['side']} | {r['ms_per_it']:,.0f} "
                     f"[{r['ms_q1']:,.0f}-{r['ms_q3']:,.0f}] | {split} | {share} | {ratio} | "
                     f"{tf} |")
    notes = [f"- {r['batch']} {r['mode']}: {r['note'].strip('; ')}" for r in rows if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def calibration_rows(rows: list[dict[str, Any]], device_name: str,
                     threads: int) -> list[dict[str, Any]]:
    """Achieved FLOP/s of SemiBench's full step per (device, family, amp, compile)."""
    from semibench.plan import backbone_family

    out = []
    for r in rows:
        if r["side"] != "SemiBench" or math.isnan(r["achieved_tflops"]):
            continue
        amp, compile_mode = r["mode"].split("/")
        eval_tf = r["eval_gflops_per_sample"] / r["eval_ms_per_sample"]
        backbone = SETTINGS[r["setting"]].backbone
        out.append({"device": device_name, "family": backbone_family(backbone),
                    "backbone": backbone, "amp": amp, "compile": compile_mode,
                    "train_tflops": f"{r['achieved_tflops']:.4f}",
                    "eval_tflops": f"{eval_tf:.4f}", "setting": r["batch"],
                    "step_ms": f"{r['ms_per_it']:.1f}",
                    "step_gflops": f"{r['gflops_per_step']:.1f}", "threads": threads,
                    "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d")})
    return out


def write_calibration(path: Path, new: list[dict[str, Any]]) -> None:
    """Merge ``new`` rows into the calibration CSV (same device/backbone/amp/compile
    replaced)."""
    from semibench.plan import CALIBRATION_COLUMNS
    from semibench.plan import CALIBRATION_KEY as key

    old = list(csv.DictReader(path.open(encoding="utf-8"))) if path.is_file() else []
    replaced = {tuple(str(r[k]) for k in key) for r in new}
    rows = [r for r in old if tuple(r.get(k, "") for k in key) not in replaced] + new
    rows.sort(key=lambda r: tuple(str(r[k]) for k in key))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CALIBRATION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def device_label(device: str) -> str:
    """``cpu`` or the GPU's short name (``h200``, ``h100``, ...) for the calibration table."""
    if not device.startswith("cuda"):
        return "cpu"
    name = torch.cuda.get_device_name(torch.device(device)).lower()
    for short in ("h200", "h100", "a100", "l40s", "v100"):
        if short in name:
            return short
    return name.replace(" ", "_")


def default_modes(device: str) -> list[tuple[str, str]]:
    """Every compile/precision mode valid on the device."""
    if not device.startswith("cuda"):
        return [("none", "none")]
    modes = [("none", "none"), ("bf16", "none"), ("bf16", "reduce-overhead")]
    if not torch.cuda.is_bf16_supported():
        modes = [(a.replace("bf16", "fp16"), c) for a, c in modes]
    return modes


# --------------------------------------------------------------------------- packing

def pack_worker(args: argparse.Namespace) -> None:
    """One packed job: warm up, wait for the common start, count steps in the window."""
    s = SETTINGS[args.pack_setting]
    s = tiny_setting(s) if args.tiny else s
    amp, compile_mode = args.pack_mode.split("/")
    with tempfile.TemporaryDirectory() as tmp:
        side = SemiBenchSide(s, args.device, amp, compile_mode, Path(tmp))
        side.full(args.warmup)
        ready = time.time()
        wait = args.pack_start - time.time()
        if wait > 0:
            time.sleep(wait)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.pack_seconds:
            side.full(1)
            steps += 1
        elapsed = time.perf_counter() - start
    print(json.dumps({"steps": steps, "seconds": elapsed, "late": ready > args.pack_start}))


def run_packing(args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Aggregate steps/s of 1, 2, 4, ... concurrent ViT-S/2 jobs on one device."""
    rows = []
    for n in args.pack:
        start_at = time.time() + args.pack_warmup_s
        cmd = [sys.executable, __file__, "--pack-worker", "--device", args.device,
               "--pack-setting", args.pack_setting, "--pack-mode", args.pack_mode,
               "--pack-seconds", str(args.pack_seconds), "--pack-start", str(start_at),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        if args.tiny:
            cmd.append("--tiny")
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = []
        deadline = start_at + args.pack_seconds + 60
        for p in procs:
            try:
                stdout, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:  # a stuck job: stop it, count it as finished none
                p.kill()
                stdout, _ = p.communicate()
            if p.returncode == 0 and stdout.strip():
                outs.append(json.loads(stdout.strip().splitlines()[-1]))
        rate = sum(o["steps"] / o["seconds"] for o in outs)
        late = sum(o["late"] for o in outs)
        rows.append({"jobs": n, "finished": len(outs), "steps_per_s": rate, "late_starts": late})
        log(f"  packing {n} jobs: {rate:.2f} steps/s in total ({len(outs)} finished, "
            f"{late} started late)")
    if rows and rows[0]["steps_per_s"]:
        for r in rows:
            r["gain_vs_one"] = r["steps_per_s"] / rows[0]["steps_per_s"]
    return rows


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="",
                   help=f"comma-separated, of: {', '.join(SETTINGS)} (default: all; --quick: "
                   "vit_s2_32,wrn_28_2)")
    p.add_argument("--quick", action="store_true",
                   help="CPU sizes: WRN 16+112 (unless --wrn-full), BERT 128 tokens, HuBERT 1 s")
    p.add_argument("--wrn-full", action="store_true", help="WRN-28-2 at 64+448 with --quick")
    p.add_argument("--tiny", action="store_true", help="toy models and batches (a dry run)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--modes", default="",
                   help="amp/compile pairs, e.g. none/none,bf16/reduce-overhead (default: every "
                   "mode valid on the device)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=2, help="full steps per side per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--split-every", type=int, default=2,
                   help="a split (phase-timed) step every this many rounds; 0 = never")
    p.add_argument("--sl-workers", type=int, default=1,
                   help="semilearn's labelled-loader workers (the unlabelled loader gets twice)")
    p.add_argument("--no-semilearn", action="store_true")
    p.add_argument("--budget-s", type=float, default=0,
                   help="start no new setting/mode after this many seconds (0 = no limit)")
    p.add_argument("--out", default=str(OUT_DIR))
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--write-calibration", nargs="?", const="", default=None,
                   help="merge achieved FLOP/s into this calibration CSV (default: the "
                   "package's src/semibench/data/calibration.csv)")
    p.add_argument("--pack", default="", help="packing: numbers of concurrent jobs, e.g. 1,2,4,8")
    p.add_argument("--pack-setting", default="vit_s2_32")
    p.add_argument("--pack-mode", default="bf16/none")
    p.add_argument("--pack-seconds", type=float, default=15)
    p.add_argument("--pack-warmup-s", type=float, default=45)
    p.add_argument("--pack-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pack-start", type=float, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no usable CUDA device on this machine")
    args.pack = [int(n) for n in args.pack.split(",") if n]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.pack_worker:
        pack_worker(args)
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    names = [n for n in args.settings.split(",") if n] or (
        ["vit_s2_32", "wrn_28_2"] if args.quick else list(SETTINGS))
    if args.rounds == 0:  # packing only
        names = []
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        log(f"speed.py: error: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SETTINGS)}")
        return 2
    modes = ([tuple(m.split("/")) for m in args.modes.split(",") if m]
             or default_modes(args.device))
    bad = [f"{a}/{c}" for a, c in modes if a not in ("none", "bf16", "fp16")
           or c not in ("none", "default", "reduce-overhead")
           or (not args.device.startswith("cuda") and (a != "none" or c == "reduce-overhead"))]
    if bad:
        log(f"speed.py: error: mode(s) {', '.join(bad)} not valid on {args.device} "
            "(amp none|bf16|fp16 / compile none|default|reduce-overhead; the CPU: none/none "
            "or none/default)")
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[Result] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            s = SETTINGS[name]
            s = quick_setting(s, args.wrn_full) if args.quick else s
            s = tiny_setting(s) if args.tiny else s
            for j, mode in enumerate(modes):
                if args.budget_s and time.perf_counter() - started > args.budget_s:
                    skipped.append(f"{name} {mode[0]}/{mode[1]}")
                    continue
                log(f"{label(s)} {mode[0]}/{mode[1]} on {args.device} ({args.threads} threads)")
                root = Path(tmp) / f"{i}-{j}"
                root.mkdir()
                try:
                    results += bench_setting(s, mode, args, root, log)
                except Exception as err:  # one failing setting does not lose the others
                    log(f"  failed: {type(err).__name__}: {err}")
                    skipped.append(f"{name} {mode[0]}/{mode[1]} (failed: {err})")
                write_outputs(args, results, skipped, [], log)
    packing = run_packing(args, log) if args.pack else []
    write_outputs(args, results, skipped, packing, log, final=True)
    return 0 if results or packing else 1


def write_outputs(args: argparse.Namespace, results: list[Result], skipped: list[str],
                  packing: list[dict[str, Any]], log: Callable[[str], None],
                  final: bool = False) -> None:
    """CSV + Markdown (and the calibration) of what has been measured so far: written after
    every setting, so a run stopped by its time limit keeps its figures."""
    out = Path(args.out)
    rows = summarise(results)
    device_name = device_label(args.device)
    load = os.getloadavg()
    header = (f"# speed: FixMatch step on {device_name} "
              f"({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
              f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds x "
              f"{args.steps} steps per side, load average {load[0]:.1f}/{load[1]:.1f}/"
              f"{load[2]:.1f}")
    text = markdown(rows, header) if rows else ""
    if skipped:
        text += "\nnot run: " + "; ".join(skipped) + "\n"
    if packing:
        text += ("## packing " + f"{args.pack_setting} {args.pack_mode}\n\n| jobs | steps/s | "
                 "gain vs one |\n|---:|---:|---:|\n" + "".join(
                     f"| {r['jobs']} | {r['steps_per_s']:.2f} | {r.get('gain_vs_one', 0):.2f} |\n"
                     for r in packing))
    tag = f"-{args.tag}" if args.tag else ""
    if rows:
        with (out / f"speed{tag}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["ratio_median",
                                                                        "ratio_q1", "ratio_q3"],
                                    extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if packing:
        with (out / f"packing{tag}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(packing[-1]))
            writer.writeheader()
            writer.writerows(packing)
    (out / f"speed{tag}.md").write_text(text, encoding="utf-8")
    if args.write_calibration is not None and rows:
        path = (Path(args.write_calibration) if args.write_calibration
                else ROOT / "src" / "semibench" / "data" / "calibration.csv")
        new = calibration_rows(rows, device_name, args.threads)
        write_calibration(path, new)
        if final:
            log(f"calibration: {len(new)} row(s) merged into {path}")
    if final:
        print(text)

if __name__ == "__main__":
    sys.exit(main())
