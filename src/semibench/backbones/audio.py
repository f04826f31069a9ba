"""Speech encoders fine-tuned as in USB's audio tasks: HuBERT-base (``facebook/hubert-base-ls960``)
and wav2vec 2.0-base (``facebook/wav2vec2-base-960h``) with transformers; the last hidden state
with dropout 0.1, mean-pooled over frames, then ``Linear(768,768)-GELU-Linear(768,C)``.

Inputs are mono waveforms ``[B, T]`` at 16 kHz. With ``normalize=True`` (default) each clip is
scaled to zero mean and unit variance first, like ``Wav2Vec2FeatureExtractor(do_normalize=True)``
in USB's collator (whether each checkpoint's extractor sets ``do_normalize`` could not be checked
offline; ``normalize=False`` feeds waveforms unchanged). On normalised input this is the
identity. No attention mask is passed: the base checkpoints use group norm in the feature
encoder, and transformers' documentation says to zero-pad them without one (USB does the same).

Weights come from ``pretrained_dir`` or the hub cache, never the network; ``pretrained=False``
builds the library's default configuration (the base architecture) with random weights, and
``config_overrides`` shrinks it for tests. The configuration's own training-time regularisers
(LayerDrop, SpecAugment-style time masking of the features) stay on in training mode, as in USB;
the time mask is drawn from torch's RNG here (see ``SpeechEncoder._time_mask``). Feature-axis
masking (``mask_feature_prob``, 0 by default) would still use NumPy's global RNG.

Layer groups for layer-wise lr decay: everything that acts before the first transformer layer
(feature encoder, feature projection, convolutional position embedding, the encoder's input
layer norm, the mask embedding) is the stem, transformer layer i is layer i + 1, the head is
last. USB's matchers differ in details that look accidental: for wav2vec 2.0 it leaves the
position convolution, and for both the input layer norm and mask embedding, unmatched, which
gives them the head's (undecayed) learning rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semibench.backbones._hf import (
    build_config,
    check_overrides,
    mean_pool,
    mlp_head,
    resolve_model_dir,
)
from semibench.backbones.base import BACKBONES, Backbone, declare_weights, planner_family
from semibench.weights import HF_WEIGHT_FILES, Weights, hf_model

#: each registered speech encoder's Hugging Face repository
REPO_IDS = {"hubert_base": ("facebook/hubert-base-ls960",),
            "wav2vec2_base": ("facebook/wav2vec2-base-960h",)}


class SpeechEncoder(Backbone):
    """A transformers wav2vec 2.0-style model (``self.encoder``) with USB's pooling and head."""

    def __init__(
        self,
        num_classes: int,
        model_cls: Any,
        config_cls: Any,
        repo_ids: tuple[str, ...],
        name: str,
        pretrained: bool = True,
        pretrained_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        config_overrides: dict[str, Any] | None = None,
        drop: float = 0.1,
        normalize: bool = True,
    ):
        super().__init__()
        source = None
        if pretrained or pretrained_dir is not None:
            source = resolve_model_dir(pretrained_dir, repo_ids, cache_dir, name)
        if pretrained:
            self.encoder = model_cls.from_pretrained(
                source, local_files_only=True, **check_overrides(config_cls, config_overrides)
            )
        else:
            self.encoder = model_cls(build_config(config_cls, source, config_overrides))
        # the feature encoder must not set requires_grad on its input: VAT differentiates with
        # respect to the waveform (USB sets the same flag); its parameters still train
        self.encoder.feature_extractor._requires_grad = False
        self.normalize = normalize
        self.num_features = self.encoder.config.hidden_size
        self.drop = nn.Dropout(drop)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = mlp_head(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"expected waveforms [B, T], got shape {tuple(x.shape)}")
        if self.normalize:
            var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
            x = (x - mean) / torch.sqrt(var + 1e-7)
        hidden = self.encoder(x, mask_time_indices=self._time_mask(x)).last_hidden_state
        return mean_pool(hidden, self.drop)

    def compile_obstacle(self) -> str | None:
        """Why ``torch.compile`` must not wrap this model (None: it may). transformers applies
        the SpecAugment time mask by boolean-mask assignment, whose data-dependent shapes break
        the graph at every training step (measured with CUDA graphs: 1.8 s/step instead of
        ~75 ms), so a compiled HuBERT/wav2vec2 would be slower than an eager one."""
        cfg = self.encoder.config
        if cfg.apply_spec_augment and cfg.mask_time_prob > 0:
            return (f"{type(self.encoder).__name__}'s training-time SpecAugment masking has "
                    "data-dependent shapes that break compiled graphs; training runs eagerly")
        return None

    def _time_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The configuration's SpecAugment time mask, drawn from torch's RNG: transformers draws
        it from NumPy's global RNG, which the trainer does not seed per step, so a run would not
        be reproducible or exactly resumable. Same distribution: one uniform ``eps`` per batch,
        ``max(min_masks, int(prob * frames / span + eps))`` distinct span starts per clip,
        spans of ``mask_time_length`` frames that may overlap. ``None`` outside training."""
        cfg = self.encoder.config
        if not (self.training and cfg.apply_spec_augment and cfg.mask_time_prob > 0):
            return None
        frames = int(self.encoder._get_feat_extract_output_lengths(x.shape[1]))
        span = cfg.mask_time_length
        mask = torch.zeros(x.shape[0], frames, dtype=torch.bool, device=x.device)
        if frames < span:  # too short to mask (transformers would raise)
            return mask
        eps = torch.rand(()).item()
        num = max(cfg.mask_time_min_masks, int(cfg.mask_time_prob * frames / span + eps))
        num = min(num, frames // span, frames - span + 1)
        if num == 0:
            return mask
        starts = torch.rand(x.shape[0], frames - span + 1).topk(num, dim=1).indices
        idx = (starts[:, :, None] + torch.arange(span)).reshape(x.shape[0], -1)
        return mask.scatter_(1, idx.to(x.device), True)

    def group_matcher(self) -> dict[str, Any]:
        stem = [
            "masked_spec_embed",
            "feature_extractor",
            "feature_projection",
            r"encoder\.pos_conv_embed",
        ]
        blocks: list[tuple[str, tuple[int, ...] | None]] = [
            (r"^encoder\.encoder\.layers\.(\d+)", None)
        ]
        if self.encoder.config.do_stable_layer_norm:  # the final norm follows the last layer
            last = self.encoder.config.num_hidden_layers - 1
            blocks.append((r"^encoder\.encoder\.layer_norm", (last,)))
        else:  # post-norm models normalise the input of the first layer
            stem.append(r"encoder\.layer_norm")
        return {"stem": rf"^encoder\.({'|'.join(stem)})", "blocks": blocks}

    def prepare_inputs(self, raw: Any) -> torch.Tensor:
        """Waveforms ``[N, T]`` as float32."""
        return torch.as_tensor(np.asarray(raw, dtype=np.float32))


def speech_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """What ``SpeechEncoder`` reads: the checkpoint from ``pretrained_dir`` or the hub cache
    (only its config with ``pretrained: false`` and a ``pretrained_dir``; nothing without)."""
    pretrained = args.get("pretrained", True)
    source_dir = args.get("pretrained_dir")
    if not pretrained and source_dir is None:
        return []
    files = (("config.json",), HF_WEIGHT_FILES) if pretrained else (("config.json",),)
    return [hf_model(name, files, source_dir, REPO_IDS[name], args.get("cache_dir"),
                     "backbone_args.pretrained: false")]


@BACKBONES.register("hubert_base")
@planner_family("speech")
@declare_weights(speech_weights)
def hubert_base(num_classes: int, **kwargs: Any) -> SpeechEncoder:
    from transformers import HubertConfig, HubertModel

    repo_ids = REPO_IDS["hubert_base"]
    return SpeechEncoder(num_classes, HubertModel, HubertConfig, repo_ids, "hubert_base", **kwargs)


@BACKBONES.register("wav2vec2_base")
@planner_family("speech")
@declare_weights(speech_weights)
def wav2vec2_base(num_classes: int, **kwargs: Any) -> SpeechEncoder:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    repo_ids = REPO_IDS["wav2vec2_base"]
    return SpeechEncoder(
        num_classes, Wav2Vec2Model, Wav2Vec2Config, repo_ids, "wav2vec2_base", **kwargs
    )
