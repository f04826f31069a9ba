"""``backbone: hf/<model id or local directory>``: any Hugging Face text or speech encoder.

The model's own files decide everything: ``AutoConfig`` says which architecture it is, a
speech encoder (one with a convolutional feature encoder, wav2vec 2.0-style: HuBERT, WavLM,
data2vec-audio, ...) takes waveforms, any other encoder takes token ids from the model's own
``AutoTokenizer``. Pooling and head are USB's (dropout, mean over positions, two-layer MLP), as
for ``bert_base_uncased`` and ``hubert_base``.

Weights never download: the name is a local directory (``save_pretrained`` output or a
downloaded repository) or a model id found in the local hub cache (``local_files_only``).
``pretrained: false`` keeps the architecture with random weights.

Layer-wise lr decay: the encoder's stack of ``num_hidden_layers`` layers is found by shape (the
``ModuleList`` of that length), layer i is group i + 1, and everything before it (embeddings,
feature encoder) is the stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from semibench.backbones._hf import resolve_model_dir
from semibench.backbones.audio import SpeechEncoder
from semibench.backbones.base import BACKBONES, Backbone, declare_weights
from semibench.backbones.text import PretrainedTextBackbone
from semibench.weights import HF_WEIGHT_FILES, Weights


def model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        return resolve_model_dir(path, (name,), cache_dir, f"hf/{name}")
    return resolve_model_dir(None, (name,), cache_dir, f"hf/{name}")


def layer_stack(encoder: nn.Module, num_layers: int) -> str:
    """The qualified name of the encoder's list of transformer layers."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return name
    raise ValueError(f"{type(encoder).__name__}: no list of {num_layers} layers found")


def _matcher(encoder: nn.Module, prefix: str) -> dict[str, Any]:
    stack = layer_stack(encoder, encoder.config.num_hidden_layers)
    escaped = stack.replace(".", r"\.")
    # names ordered as the modules run: those registered before the stack form the stem
    stem = []
    for name, _ in encoder.named_children():
        if stack == name or stack.startswith(name + "."):
            break
        stem.append(name)
    inner_stem = []  # siblings of the stack inside its parent (e.g. encoder.pos_conv_embed)
    parent = stack.rpartition(".")[0]
    if parent:
        for name, _ in encoder.get_submodule(parent).named_children():
            if f"{parent}.{name}" == stack:
                break
            inner_stem.append(f"{parent}.{name}".replace(".", r"\."))
    stem += [n for n, _ in encoder.named_parameters(recurse=False)]  # e.g. masked_spec_embed
    stem_names = "|".join([*stem, *inner_stem]) or "$^"
    return {"stem": rf"^{prefix}\.(?:{stem_names})",
            "blocks": [(rf"^{prefix}\.{escaped}\.(\d+)", None)]}


class HFText(PretrainedTextBackbone):
    """A text encoder of any architecture, with its own tokenizer."""

    def group_matcher(self) -> dict[str, Any]:
        return _matcher(self.encoder, "encoder")

    def freeze_below(self, trainable_layers: int) -> None:
        layers = self.encoder.get_submodule(
            layer_stack(self.encoder, self.encoder.config.num_hidden_layers))
        if not 0 <= trainable_layers <= len(layers):
            raise ValueError(f"trainable_layers={trainable_layers}: must be in [0, {len(layers)}]")
        frozen = [m for m in layers[: len(layers) - trainable_layers]]
        for module in [self.encoder.get_input_embeddings(), *frozen]:
            for p in module.parameters():
                p.requires_grad_(False)


class HFSpeech(SpeechEncoder):
    def group_matcher(self) -> dict[str, Any]:
        return _matcher(self.encoder, "encoder")


def is_speech(config: Any) -> bool:
    """wav2vec 2.0-style encoders: a convolutional feature encoder over raw waveforms."""
    return hasattr(config, "conv_dim") and hasattr(config, "mask_time_prob")


def is_local(model: str) -> bool:
    """Whether ``hf/<model>`` names a directory (an existing one, or a path: ``/``, ``.``,
    ``~``) rather than a model id of the hub cache (``org/name``)."""
    return Path(model).expanduser().is_dir() or model.startswith(("/", ".", "~"))


def hf_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """The model's files: its config always (it decides the architecture), its weights when
    pretrained; from its directory, or the hub cache."""
    model = name.partition("/")[2]
    files: tuple[tuple[str, ...], ...] = (("config.json",),)
    if args.get("pretrained", True):
        files += (HF_WEIGHT_FILES,)
    random = "backbone_args.pretrained: false for random weights (the config is still read)"
    if is_local(model):
        return [Weights(name, files, directory=str(Path(model).expanduser()),
                        fix="put a Hugging Face checkpoint there (save_pretrained's output, or "
                            f"`hf download <model id> --local-dir {model}`), or {random}")]
    cache = args.get("cache_dir")
    return [Weights(name, files, repos=(model,), cache_dir=None if cache is None else str(cache),
                    fix=f"get it with `hf download {model}` (on a machine with internet access, "
                        f"then copy the cache), or name a local directory (hf/./my_model), or "
                        f"{random}")]


@BACKBONES.register_family("hf")
@declare_weights(hf_weights)
def hf_backbone(model: str, num_classes: int, *, pretrained: bool = True,
                cache_dir: str | None = None, max_length: int = 128, drop: float = 0.1,
                pool: str = "masked", trainable_layers: int | None = None,
                trim_multiple: int = 8, normalize: bool = True) -> Backbone:
    """Any Hugging Face encoder from a local directory or the cache, e.g. ``hf/./my_bert``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = model_dir(model, cache_dir)
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    if is_speech(config):
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        model_cls = MODEL_MAPPING[type(config)]
        return HFSpeech(num_classes, model_cls, type(config), (model,), f"hf/{model}",
                        pretrained=pretrained, pretrained_dir=source, drop=drop,
                        normalize=normalize)
    encoder = (AutoModel.from_pretrained(source, local_files_only=True) if pretrained
               else AutoModel.from_config(config))
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    return HFText(num_classes, encoder, tokenizer, max_length=max_length, drop=drop, pool=pool,
                  trainable_layers=trainable_layers, trim_multiple=trim_multiple)


def planner_family(model: str) -> str:
    """The planner's calibration family of ``hf/<model>``, from the model's local config (no
    download): ``speech`` for a speech encoder, ``bert`` for a text encoder, ``hf`` when the
    config cannot be read here."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir(model), local_files_only=True)
    except (OSError, ValueError):
        return "hf"
    return "speech" if is_speech(config) else "bert"


hf_backbone.planner_family = planner_family  # type: ignore[attr-defined]
