"""Vision Transformers of USB's CV tasks, built with timm, with USB's pretrained weights.

The architectures are USB's (``semilearn/nets/vit``): class-token pooling, the final
LayerNorm(eps 1e-6) on the tokens, qkv bias, MLP ratio 4, no dropout, stochastic depth rising
linearly to ``drop_path_rate`` over the blocks (0.1 for ViT-Ti, 0.2 otherwise) and a linear head
on the class token. timm's ``VisionTransformer`` with these settings has the same parameter
names as USB's, so USB's checkpoints load directly.

Weights: the ``.pth`` files of USB's GitHub release ``v.0.0.0`` (see ``WEIGHTS_URL``), read from
``weights_dir/<file>`` (``backbone_args.weights_dir``, else ``$SEMIBENCH_WEIGHTS``, else
``data/weights``) with ``torch.load(weights_only=True)``; nothing downloads at run time. As in
USB's ``load_checkpoint``: the state dict may sit under ``"model"``, a ``module.`` prefix is
stripped, keys starting with ``head``/``fc``/``classifier``/``mlp`` (the pre-training heads,
also ``fc_norm``) are dropped, and the position embedding is resized bicubically
(``align_corners=False``, no antialiasing) when the checkpoint's grid differs (MAE ViT-B/16 is
14x14 at 224 px, STL-10's model 6x6 at 96 px). Keys the model lacks are ignored and keys the
checkpoint lacks stay at their initial values, both with a warning; a checkpoint that matches
no parameter is an error.

Layer groups for layer-wise lr decay are timm's/USB's: class token, position embedding and patch
embedding form the stem (layer 0), block i is layer i + 1, the final norm belongs to the last
block (timm's ``MATCH_PREV_GROUP``) and the head is last, so the stem's scale is
``layer_decay ** (depth + 1)``.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semibench.backbones.base import BACKBONES, Backbone, declare_weights, planner_family
from semibench.weights import Weights

WEIGHTS_URL = "https://github.com/microsoft/Semi-supervised-learning/releases/download/v.0.0.0"
WEIGHTS_ENV = "SEMIBENCH_WEIGHTS"
DEFAULT_WEIGHTS_DIR = "data/weights"
#: top-level key prefixes of the pre-training heads, dropped on loading (as USB does)
HEAD_PREFIXES = ("head", "fc", "classifier", "mlp")
#: each registered ViT's file of USB's release
WEIGHT_FILES = {
    "vit_tiny_patch2_32": "vit_tiny_patch2_32_mlp_im_1k_32.pth",
    "vit_small_patch2_32": "vit_small_patch2_32_mlp_im_1k_32.pth",
    "vit_small_patch16_224": "vit_small_patch16_224_mlp_im_1k_224.pth",
    "vit_base_patch16_96": "mae_pretrain_vit_base.pth",
}


def default_weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV, DEFAULT_WEIGHTS_DIR))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, without unpickling anything but tensors and containers
    (``argparse.Namespace`` is allowed too: training scripts often save their arguments)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(ckpt).__name__}")
    return {k.removeprefix("module."): v for k, v in ckpt.items() if torch.is_tensor(v)}


class ViT(Backbone):
    """timm's ``VisionTransformer`` (``self.vit``, without its head) and a linear head."""

    def __init__(
        self,
        num_classes: int,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        drop_path_rate: float,
        weights_file: str,
        pretrained: bool = True,
        weights_dir: str | Path | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
    ):
        super().__init__()
        from timm.models import VisionTransformer

        self.vit = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            global_pool="token",
            class_token=True,
            fc_norm=False,
            num_classes=0,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.depth = depth
        self.num_features = embed_dim
        self.weights_file = weights_file
        self.reset_classifier(num_classes)
        if pretrained:
            folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
            path = folder / weights_file
            if not path.is_file():
                raise FileNotFoundError(
                    f"pretrained weights {weights_file} not found in {folder}: download "
                    f"{WEIGHTS_URL}/{weights_file} (USB's release v.0.0.0) into that directory, "
                    f"or set backbone_args.weights_dir (or ${WEIGHTS_ENV}) to where it is, or "
                    "backbone_args.pretrained=false for random weights"
                )
            self.load_pretrained(path)

    def load_pretrained(self, path: str | Path) -> None:
        """Load a USB/timm ViT checkpoint (see the module docstring for what is adapted)."""
        from timm.layers import resample_abs_pos_embed

        state = {
            k: v for k, v in read_state_dict(Path(path)).items() if not k.startswith(HEAD_PREFIXES)
        }
        own = self.vit.state_dict()
        pos = state.get("pos_embed")
        if pos is not None and pos.shape != own["pos_embed"].shape:
            prefix = self.vit.num_prefix_tokens
            state["pos_embed"] = resample_abs_pos_embed(
                pos.float(),
                new_size=list(self.vit.patch_embed.grid_size),
                num_prefix_tokens=prefix,
                interpolation="bicubic",
                antialias=False,
            ).to(pos.dtype)
        matched = set(state) & set(own)
        if not matched:
            raise ValueError(f"{path}: no key matches a ViT parameter (keys: {sorted(state)[:5]})")
        result = self.vit.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(
                f"{Path(path).name}: kept initial values for {result.missing_keys}; "
                f"ignored {result.unexpected_keys}",
                stacklevel=2,
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised class token ``[B, D]``."""
        return self.vit.forward_head(self.vit.forward_features(x), pre_logits=True)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def no_weight_decay(self) -> set[str]:
        return {"vit.pos_embed", "vit.cls_token"}

    def group_matcher(self) -> dict[str, Any]:
        return {
            "stem": r"^vit\.(cls_token|pos_embed|patch_embed)",
            "blocks": [(r"^vit\.blocks\.(\d+)", None), (r"^vit\.norm", (self.depth - 1,))],
        }


def _vit(num_classes: int, model_args: dict[str, Any], kwargs: dict[str, Any]) -> ViT:
    return ViT(num_classes, **{**model_args, **kwargs})


def vit_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """The ``.pth`` file a ViT loads (none with ``pretrained: false``): where ``ViT`` looks."""
    if not args.get("pretrained", True):
        return []
    file = args.get("weights_file", WEIGHT_FILES[name])
    given = args.get("weights_dir")
    fix = (f"download {WEIGHTS_URL}/{file} (USB's release v.0.0.0) into that directory, or set "
           f"backbone_args.weights_dir (or ${WEIGHTS_ENV}) to where it is, or "
           "backbone_args.pretrained: false for random weights")
    return [Weights(name, ((file,),), directory=str(given or DEFAULT_WEIGHTS_DIR),
                    env=None if given else WEIGHTS_ENV, fix=fix)]


@BACKBONES.register("vit_tiny_patch2_32")
@planner_family("vit")
@declare_weights(vit_weights)
def vit_tiny_patch2_32(num_classes: int, **kwargs: Any) -> ViT:
    """ViT-Ti/2 at 32 px (TissueMNIST)."""
    args = dict(
        img_size=32,
        patch_size=2,
        embed_dim=192,
        depth=12,
        num_heads=3,
        drop_path_rate=0.1,
        weights_file=WEIGHT_FILES["vit_tiny_patch2_32"],
    )
    return _vit(num_classes, args, kwargs)


@BACKBONES.register("vit_small_patch2_32")
@planner_family("vit")
@declare_weights(vit_weights)
def vit_small_patch2_32(num_classes: int, **kwargs: Any) -> ViT:
    """ViT-S/2 at 32 px (CIFAR-100, EuroSAT)."""
    args = dict(
        img_size=32,
        patch_size=2,
        embed_dim=384,
        depth=12,
        num_heads=6,
        drop_path_rate=0.2,
        weights_file=WEIGHT_FILES["vit_small_patch2_32"],
    )
    return _vit(num_classes, args, kwargs)


@BACKBONES.register("vit_small_patch16_224")
@planner_family("vit")
@declare_weights(vit_weights)
def vit_small_patch16_224(num_classes: int, **kwargs: Any) -> ViT:
    """ViT-S/16 at 224 px (Semi-Aves)."""
    args = dict(
        img_size=224,
        patch_size=16,
        embed_dim=384,
        depth=12,
        num_heads=6,
        drop_path_rate=0.2,
        weights_file=WEIGHT_FILES["vit_small_patch16_224"],
    )
    return _vit(num_classes, args, kwargs)


@BACKBONES.register("vit_base_patch16_96")
@planner_family("vit")
@declare_weights(vit_weights)
def vit_base_patch16_96(num_classes: int, **kwargs: Any) -> ViT:
    """ViT-B/16 at 96 px from MAE's ImageNet pre-training (STL-10)."""
    args = dict(
        img_size=96,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        drop_path_rate=0.2,
        weights_file=WEIGHT_FILES["vit_base_patch16_96"],
    )
    return _vit(num_classes, args, kwargs)
