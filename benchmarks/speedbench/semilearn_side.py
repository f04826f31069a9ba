"""semilearn 0.3.2's side: its FixMatch, nets, hooks and loaders at the same sizes."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speedbench.settings import SEMILEARN_DIR, Setting
from speedbench.timing import Phases, sync


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
        sync(self.device)
        start = time.perf_counter()
        for _ in range(n):
            alg.call_hook("before_train_step")
            alg.out_dict, alg.log_dict = alg.train_step(**self._data())
            alg.call_hook("after_train_step")
            alg.it += 1
        sync(self.device)
        return (time.perf_counter() - start) / n

    def split(self) -> dict[str, float]:
        """One step in phases; ``ParamUpdateHook``'s fp32 path is inlined to time it."""
        alg = self.alg
        t = Phases(self.device)
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
