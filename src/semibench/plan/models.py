"""The backbones the planner counts: built with random weights and no file (pretrained off;
BERT with the bundled WordPiece vocabulary), or BERT estimated from its config when it cannot be
built offline; and each backbone's calibration family, as the backbone declares it."""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
from torch import nn

from semibench.plan.errors import PlanError


def backbone_family(name: str) -> str:
    """The calibration family of a backbone (vit, wrn, bert, speech, cnn, timm, ...), as its
    builder declares it (``semibench.backbones.base.backbone_family``)."""
    from semibench.backbones import base

    return base.backbone_family(name)


def _offline_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``backbone_args`` for random weights without any file: pretrained off, weight
    locations dropped; BERT's tokenizer from the bundled MiniLM (the same WordPiece vocab)."""
    from semibench.config import backbone_arguments

    allowed = backbone_arguments(name)
    out = {k: v for k, v in args.items()
           if k not in ("pretrained", "pretrained_dir", "weights_dir", "cache_dir")}
    if allowed is None or "pretrained" in allowed:
        out["pretrained"] = False
    if allowed is not None and "weights" in allowed:  # timm/<model>: weights none, cache or a file
        out["weights"] = "none"
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
