"""BERT-base (uncased) fine-tuned as in USB's NLP tasks: the last hidden state with dropout 0.1,
mean-pooled, then ``Linear(768,768)-GELU-Linear(768,C)``.

Weights come from ``pretrained_dir`` or from the hub cache (``google-bert/bert-base-uncased`` or
its old id ``bert-base-uncased``), never from the network. ``pretrained=False`` builds the same
architecture with random weights (``BertConfig``'s defaults are bert-base-uncased's), and
``config_overrides`` shrinks it for tests; the tokenizer then comes from ``tokenizer_dir`` (a
directory with a WordPiece ``vocab.txt`` is enough), else from the weights' source. Texts are
truncated and padded to ``max_length`` tokens (USB's 512 by default).

Deviations from USB, on purpose:

* ``pool="masked"`` (default) averages over the non-padding positions. USB averages over *all*
  positions (``pool="all"``), but USB pads each batch only to its longest text, so there a
  text's features depend on the other texts of its batch; SemiBench stores texts padded to
  ``max_length``, where the all-position mean would be dominated by padding. The masked mean
  equals USB's value for the longest text of a USB batch. The dropout is applied to the hidden
  states before pooling, as USB does.
* No pooler layer is built (USB's ``BertModel`` has one that its forward pass never uses; it
  received no gradient). Its checkpoint weights are ignored on loading.
* (Not a deviation, a fact:) USB's ``no_weight_decay()`` is empty for BERT, so its 2-D position
  embeddings are decayed; the same here. Only 1-D parameters (norms, biases) skip decay.
* One stored version of USB's ``nets/bert/bert.py`` silently loads ``FacebookAI/roberta-base``
  for the name ``bert_base_uncased``; SemiBench loads BERT, as the name, the USB paper and the
  protocol notes say.
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
from semibench.weights import HF_WEIGHT_FILES, TOKENIZER_FILES, Weights, hf_model

BERT_REPO_IDS = ("google-bert/bert-base-uncased", "bert-base-uncased")
POOLS = ("masked", "all")


class PretrainedTextBackbone(Backbone):
    """A BERT-family encoder (``self.encoder``) with its tokenizer, USB's pooling and head.

    Inputs are token ids ``[B, L]`` (``prepare_inputs`` tokenises stored texts); the attention
    mask is recovered from the padding id so that views (token deletion, swaps) keep it right.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: nn.Module,
        tokenizer: Any,
        max_length: int = 512,
        drop: float = 0.1,
        pool: str = "masked",
        trainable_layers: int | None = None,
        trim_multiple: int = 8,
    ):
        super().__init__()
        if trim_multiple < 0:
            raise ValueError(f"trim_multiple={trim_multiple}: must be >= 0 (0: no trimming)")
        self.trim_multiple = trim_multiple
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r}; allowed: {', '.join(POOLS)}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no padding token")
        positions = getattr(encoder.config, "max_position_embeddings", max_length)
        if max_length > positions:
            raise ValueError(f"max_length={max_length} exceeds the encoder's {positions} positions")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pool = pool
        self.num_features = encoder.config.hidden_size
        self.drop = nn.Dropout(drop)
        self.reset_classifier(num_classes)
        if trainable_layers is not None:
            self.freeze_below(trainable_layers)

    def freeze_below(self, trainable_layers: int) -> None:
        """Fine-tune only the top ``trainable_layers`` layers (and the head): a budget measure
        that USB does not take (it fine-tunes everything)."""
        layers = self.encoder.encoder.layer
        if not 0 <= trainable_layers <= len(layers):
            raise ValueError(f"trainable_layers={trainable_layers}: must be in [0, {len(layers)}]")
        for module in [self.encoder.embeddings, *layers[: len(layers) - trainable_layers]]:
            for p in module.parameters():
                p.requires_grad_(False)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = mlp_head(self.num_features, num_classes)

    def _mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids != self.tokenizer.pad_token_id).long()

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(hidden, self.drop, mask if self.pool == "masked" else None)

    def _trim(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Drop the padding columns after a batch's longest text, rounded up to a multiple of
        ``trim_multiple`` (tensor cores like 8): texts are stored padded to ``max_length``, and
        attention over padding is most of BERT's cost on short texts (AG News averages ~50
        tokens of 512). Exact: padding is masked in attention and pooling (with ``pool="all"``
        and ``trim_multiple=1`` the mean runs over the batch's longest text, as USB's per-batch
        padding does). Costs one read of the batch's length from the device per pass."""
        if not self.trim_multiple or input_ids.device.type == "meta":  # meta: FLOP counting
            return input_ids
        used = self._mask(input_ids).any(dim=0)  # columns where some text has a token
        positions = torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)
        longest = int((used * positions).max())
        keep = min(input_ids.shape[1], max(1, -(-longest // self.trim_multiple) * self.trim_multiple))
        return input_ids[:, :keep]

    @property
    def sorts_eval_by_length(self) -> bool:
        """Whether :meth:`eval_order` sorts (trimming on, masked pooling)."""
        return bool(self.trim_multiple) and self.pool == "masked"

    def eval_order(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """Evaluation batches texts of similar length (longest first, so that the largest
        batch comes first; ties keep the stored order): trimming then drops nearly all padding,
        and an evaluation costs the texts' mean length instead of each batch's longest (on
        IMDB, near 512 tokens for a batch of 8). Exact with masked pooling, where a text's
        logits do not depend on the others in its batch; with ``pool="all"`` they do, and the
        stored order is kept (None). ``input_ids`` are stored ids, ``[N, L]`` or ``[N, K, L]``
        (column 0 is the text that evaluation sees)."""
        if not self.sorts_eval_by_length:
            return None
        ids = input_ids[:, 0] if input_ids.dim() == 3 else input_ids
        lengths = self._mask(ids).sum(dim=1)
        return torch.sort(lengths, descending=True, stable=True).indices

    def forward_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        input_ids = self._trim(input_ids)
        mask = self._mask(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return self._pool(hidden, mask)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The embedding layer's output (token + position + type, normalised): what USB's VAT
        perturbs (``hidden_states[0]``)."""
        return self.encoder.embeddings(input_ids=self._trim(input_ids))

    def forward_embedded(self, e: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        mask = self._mask(input_ids[:, : e.shape[1]])  # ``e`` comes from ``embed``: trimmed
        attention = create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=e, attention_mask=mask
        )
        hidden = self.encoder.encoder(e, attention_mask=attention).last_hidden_state
        return self._pool(hidden, mask)

    def group_matcher(self) -> dict[str, Any]:
        # embeddings = layer 0, transformer layer i = layer i + 1, the head last (USB's grouping)
        return {
            "stem": r"^encoder\.embeddings",
            "blocks": [(r"^encoder\.encoder\.layer\.(\d+)", None)],
        }

    def prepare_inputs(self, raw: np.ndarray, chunk: int = 4096) -> torch.Tensor:
        """Token ids ``[N, L]`` for texts ``[N]``, or ``[N, K, L]`` for ``[N, K]`` (an original
        and its back-translations), truncated and padded to ``max_length``.

        int32 and tokenised ``chunk`` texts at a time: Yahoo! Answers' 500k texts with two
        back-translations at 512 tokens take 3 GB instead of 6 (embeddings accept int32).
        """
        flat = np.asarray(raw).reshape(-1)
        ids = torch.empty((len(flat), self.max_length), dtype=torch.int32)
        for start in range(0, len(flat), chunk):
            encoded = self.tokenizer(
                [str(t) for t in flat[start : start + chunk]],
                max_length=self.max_length,
                truncation=True,
                padding="max_length",
                return_tensors="pt",
            )
            ids[start : start + chunk] = encoded["input_ids"]
        return ids.reshape(*np.shape(raw), self.max_length)

    def view_spec(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {
            "pad_id": tok.pad_token_id,
            "cls_id": tok.cls_token_id,
            "sep_id": tok.sep_token_id,
            "mask_id": tok.mask_token_id,
        }


class BertBaseUncased(PretrainedTextBackbone):
    def __init__(
        self,
        num_classes: int,
        pretrained: bool = True,
        pretrained_dir: str | Path | None = None,
        tokenizer_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        config_overrides: dict[str, Any] | None = None,
        max_length: int = 512,
        drop: float = 0.1,
        pool: str = "masked",
        trainable_layers: int | None = None,
        trim_multiple: int = 8,
    ):
        from transformers import BertConfig, BertModel, BertTokenizer

        what = "bert_base_uncased"
        source = None
        if pretrained or pretrained_dir is not None:
            source = resolve_model_dir(pretrained_dir, BERT_REPO_IDS, cache_dir, what)
        tok_source = Path(tokenizer_dir) if tokenizer_dir is not None else source
        if tok_source is None:  # random weights and no tokenizer named: bert-base-uncased's
            tok_source = resolve_model_dir(None, BERT_REPO_IDS, cache_dir, f"{what} tokenizer")
        if (
            not (tok_source / "vocab.txt").is_file()
            and not (tok_source / "tokenizer.json").is_file()
        ):
            raise FileNotFoundError(
                f"{what}: tokenizer directory {tok_source} has neither vocab.txt nor "
                "tokenizer.json (bert-base-uncased's WordPiece vocabulary)"
            )
        tokenizer = BertTokenizer.from_pretrained(tok_source, local_files_only=True)
        if pretrained:
            encoder = BertModel.from_pretrained(
                source,
                local_files_only=True,
                add_pooling_layer=False,
                **check_overrides(BertConfig, config_overrides),
            )
        else:
            overrides = {"vocab_size": len(tokenizer), **(config_overrides or {})}
            encoder = BertModel(
                build_config(BertConfig, source, overrides), add_pooling_layer=False
            )
        if len(tokenizer) > encoder.config.vocab_size:
            raise ValueError(
                f"{what}: the tokenizer has {len(tokenizer)} tokens but the encoder's embedding "
                f"only {encoder.config.vocab_size}"
            )
        super().__init__(num_classes, encoder, tokenizer, max_length, drop, pool, trainable_layers,
                         trim_multiple)


def bert_weights(name: str, args: dict[str, Any]) -> list[Weights]:
    """What ``BertBaseUncased`` reads: the checkpoint (``pretrained_dir`` or the hub cache;
    its config alone with ``pretrained: false`` and a ``pretrained_dir``) and the tokenizer
    (``tokenizer_dir``, else the checkpoint's, else bert-base-uncased's from the cache)."""
    pretrained = args.get("pretrained", True)
    source_dir, tokenizer_dir = args.get("pretrained_dir"), args.get("tokenizer_dir")
    cache = args.get("cache_dir")
    random = "backbone_args.pretrained: false"
    out = []
    if pretrained or source_dir is not None:
        files = [("config.json",)] + ([HF_WEIGHT_FILES] if pretrained else []) + (
            [TOKENIZER_FILES] if tokenizer_dir is None else [])
        out.append(hf_model(name, tuple(files), source_dir, BERT_REPO_IDS, cache, random))
    if tokenizer_dir is not None:
        out.append(Weights(name, (TOKENIZER_FILES,), directory=str(tokenizer_dir),
                           fix="put bert-base-uncased's WordPiece vocab.txt (or its "
                               "tokenizer.json) there"))
    elif not out:  # random weights, no directory named: bert-base-uncased's tokenizer
        out.append(Weights(name, (TOKENIZER_FILES,), repos=BERT_REPO_IDS,
                           cache_dir=None if cache is None else str(cache),
                           fix=f"random weights still take bert-base-uncased's tokenizer: get "
                               f"it with `hf download {BERT_REPO_IDS[0]}`, or set "
                               "backbone_args.tokenizer_dir to a directory with its vocab.txt"))
    return out


@BACKBONES.register("bert_base_uncased")
@planner_family("bert")
@declare_weights(bert_weights)
def bert_base_uncased(num_classes: int, **kwargs: Any) -> BertBaseUncased:
    return BertBaseUncased(num_classes, **kwargs)
