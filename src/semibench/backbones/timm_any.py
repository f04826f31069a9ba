"""``backbone: timm/<model name>``: any timm image model as a backbone.

The model is ``timm.create_model(name, num_classes=0)`` (pooled features) with a linear head.
Its input preparation comes from its own pretrained config: the views normalise with the
model's ``mean``/``std`` (``timm.data.resolve_data_config``). ``img_size`` (for models with a
fixed input size, e.g. ViTs) and any other keyword go to ``create_model`` through
``model_args``.

Weights never download at train time: ``weights: none`` (random), a path to a checkpoint file
(``.safetensors``, or a ``.pth``/``.bin`` read with ``torch.load(weights_only=True)``), or
``weights: cache`` (the default), the model's pretrained tag in the local Hugging Face cache,
which fails with a message saying how to get it there. Keys of the pre-training classifier are
dropped; a checkpoint that matches no parameter is an error.

Layer-wise lr decay uses timm's own coarse ``group_matcher`` of the model (stem, then stages or
blocks in order, then the head).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semibench.backbones.base import BACKBONES, Backbone, declare_weights
from semibench.weights import Weights

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _prefixed(pattern: str) -> str:
    """A timm matcher regex over ``model.``-prefixed names (the model sits in ``self.model``)."""
    return r"^model\.(?:" + pattern.lstrip("^") + ")"


def cached_weights(model: nn.Module, cache_dir: str | Path | None = None) -> Path:
    """The local file of the model's pretrained tag, from the Hugging Face cache only."""
    from huggingface_hub import try_to_load_from_cache

    repo = model.pretrained_cfg.get("hf_hub_id")
    name = model.pretrained_cfg.get("architecture", "?")
    if repo:
        for file in WEIGHT_FILES:
            found = try_to_load_from_cache(repo, file, cache_dir=cache_dir)
            if isinstance(found, str):
                return Path(found)
    where = repo or "no Hugging Face repository"
    raise FileNotFoundError(
        f"timm/{name}: pretrained weights ({where}) are not in the local Hugging Face cache; "
        f"fetch them once on a machine with internet (`hf download {repo}`) and copy the cache, "
        "or set backbone_args.weights to a checkpoint file, or to none for random weights")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from semibench.backbones.vit import read_state_dict

    return read_state_dict(path)


class TimmBackbone(Backbone):
    """A timm model without its classifier (``self.model``) and a linear head."""

    def __init__(self, model_name: str, num_classes: int, *, weights: str = "cache",
                 img_size: int | None = None, cache_dir: str | None = None,
                 model_args: dict[str, Any] | None = None):
        super().__init__()
        import timm

        kwargs = dict(model_args or {})
        if img_size is not None:
            kwargs["img_size"] = img_size
        try:
            self.model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        except RuntimeError as err:  # timm: "Unknown model (...)"
            raise ValueError(f"timm/{model_name}: {err}") from None
        self.model_name = model_name
        self.num_features = int(self.model.num_features)
        # convnets (a ViT has one convolution, its patch embedding)
        self.channels_last = sum(isinstance(m, nn.Conv2d) for m in self.model.modules()) > 1
        self.reset_classifier(num_classes)
        if weights != "none":
            path = cached_weights(self.model, cache_dir) if weights == "cache" else Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"timm/{model_name}: weights file {path} not found")
            self.load_weights(path)

    def load_weights(self, path: Path) -> None:
        classifier = self.model.pretrained_cfg.get("classifier") or "head"
        heads = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
        state = {k: v for k, v in read_weights(path).items()
                 if not any(k == h or k.startswith(h + ".") for h in heads)}
        own = self.model.state_dict()
        if not set(state) & set(own):
            raise ValueError(f"{path}: no key matches a parameter of timm/{self.model_name}")
        self.model.load_state_dict(state, strict=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # num_classes=0: pooled pre-logits features

    def view_spec(self) -> dict[str, Any]:
        from timm.data import resolve_data_config

        config = resolve_data_config({}, model=self.model)
        mean, std = list(config["mean"]), list(config["std"])
        channels = self.in_channels()
        if channels != len(mean):  # e.g. in_chans=1 for grey-scale data: the channel average
            mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
        return {"mean": mean, "std": std}

    def in_channels(self) -> int:
        """Input channels of the model as built (``model_args: {in_chans: 1}`` changes them)."""
        first = self.model.pretrained_cfg.get("first_conv")
        try:
            return int(self.model.get_submodule(first).in_channels)
        except (AttributeError, TypeError):
            conv = next(m for m in self.model.modules() if isinstance(m, nn.Conv2d))
            return int(conv.in_channels)

    def no_weight_decay(self) -> set[str]:
        names = getattr(self.model, "no_weight_decay", lambda: set())()
        return {f"model.{n}" for n in names}

    def group_matcher(self) -> dict[str, Any]:
        matcher = self.model.group_matcher(coarse=True)
        blocks = matcher["blocks"]
        if isinstance(blocks, str):
            blocks = [(blocks, None)]
        out = []
        for pattern, fixed in blocks:
            if re.compile(pattern).groups == 0 and fixed is None:
                fixed = (0,)
            out.append((_prefixed(pattern), fixed))
        return {"stem": _prefixed(matcher["stem"]), "blocks": out}


def timm_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """What ``weights`` reads: nothing (``none``), that file, or the model's pretrained tag in
    the hub cache (``cache``; from timm's pretrained config, without building the model)."""
    from timm.models import get_pretrained_cfg

    weights = str(args.get("weights", "cache"))
    if weights == "none":
        return []
    random = "or to none for random weights"
    if weights != "cache":
        path = Path(weights).expanduser()
        return [Weights(name, ((path.name,),), directory=str(path.parent),
                        fix=f"set backbone_args.weights to an existing checkpoint file, {random}")]
    try:
        cfg = get_pretrained_cfg(name.partition("/")[2])
    except (RuntimeError, KeyError, ValueError):
        return []  # an unknown model: its name check says so
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return [Weights(name, (WEIGHT_FILES,),
                        fix="timm names no Hugging Face repository for its pretrained weights: "
                            f"set backbone_args.weights to a checkpoint file, {random}")]
    cache = args.get("cache_dir")
    return [Weights(name, (WEIGHT_FILES,), repos=(repo,),
                    cache_dir=None if cache is None else str(cache),
                    fix=f"fetch them once on a machine with internet (`hf download {repo}`) and "
                        f"copy the cache, or set backbone_args.weights to a checkpoint file, "
                        f"{random}")]


@BACKBONES.register_family("timm")
@declare_weights(timm_weights)
def timm_backbone(model_name: str, num_classes: int, *, weights: str = "cache",
                  img_size: int | None = None, cache_dir: str | None = None,
                  model_args: dict[str, Any] | None = None) -> TimmBackbone:
    """Any timm model by name, e.g. ``timm/resnet18`` or ``timm/vit_small_patch16_224``."""
    return TimmBackbone(model_name, num_classes, weights=weights, img_size=img_size,
                        cache_dir=cache_dir, model_args=model_args)


def check_name(model_name: str) -> None:
    """Before anything runs: timm knows the name."""
    import timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:8]
        raise ValueError(f"timm has no model {model_name!r}" +
                         (f"; similar: {', '.join(close)}" if close else ""))


timm_backbone.check_name = check_name  # type: ignore[attr-defined]
#: the planner's calibration family of every ``timm/<model>``: rows measured on timm models
#: serve the timm models that have none
timm_backbone.planner_family = "timm"  # type: ignore[attr-defined]
