"""Shared pieces of the Hugging Face backbones (text and audio): where the weights come from,
USB's two-layer head and the dropout + mean pooling of the last hidden state.

Weights never download at run time: a backbone loads from ``pretrained_dir`` (a directory
written by ``save_pretrained`` or a downloaded model repository) or from the local hub cache
(``local_files_only``); anything else fails with a message that says what to put where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def resolve_model_dir(
    pretrained_dir: str | Path | None,
    repo_ids: tuple[str, ...],
    cache_dir: str | Path | None = None,
    what: str = "model",
) -> Path:
    """The local directory that holds ``config.json`` of a model: ``pretrained_dir`` when given,
    else the snapshot of the first of ``repo_ids`` found in the hub cache (``cache_dir`` or
    ``$HF_HUB_CACHE``). Raises ``FileNotFoundError`` naming the repository and both options."""
    if pretrained_dir is not None:
        path = Path(pretrained_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{what}: pretrained_dir {path} has no config.json; put a Hugging Face "
                f"checkpoint of {repo_ids[0]} there (e.g. `hf download {repo_ids[0]} "
                f"--local-dir {path}`)"
            )
        return path
    from huggingface_hub import constants, try_to_load_from_cache

    for repo_id in repo_ids:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
        if isinstance(found, str):
            return Path(found).parent
    where = cache_dir if cache_dir is not None else constants.HF_HUB_CACHE
    raise FileNotFoundError(
        f"{what}: {repo_ids[0]} is not in the Hugging Face cache {where} (looked for "
        f"{', '.join(repo_ids)}); download it once with `hf download {repo_ids[0]}` on a "
        "machine with internet access (then copy the cache), or set backbone_args.pretrained_dir "
        "to a directory holding its config.json and weights"
    )


def mlp_head(dim: int, num_classes: int) -> nn.Sequential:
    """USB's classifier for BERT, HuBERT and wav2vec 2.0: ``Linear(d, d)-GELU-Linear(d, C)``."""
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))


def mean_pool(
    hidden: torch.Tensor, drop: nn.Module, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """USB's pooling: dropout on the last hidden state ``[B, L, D]``, then the mean over positions
    (over the positions where ``mask`` is 1 when a mask is given)."""
    hidden = drop(hidden)
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def build_config(config_cls: Any, source: Path | None, overrides: dict[str, Any] | None) -> Any:
    """A transformers config: the one in ``source`` (or the class defaults, which are the base
    architectures) with ``overrides`` passed to the constructor, so that derived sizes (e.g. the
    number of conv layers from ``conv_dim``) follow. Unknown names are refused: a typo would
    otherwise build the default architecture silently."""
    overrides = check_overrides(config_cls, overrides)
    if source is None:
        return config_cls(**overrides)
    return config_cls.from_pretrained(source, local_files_only=True, **overrides)


def check_overrides(config_cls: Any, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` as a dict, after refusing names that ``config_cls`` does not have."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(config_cls().to_dict()))
    if unknown:
        raise ValueError(
            f"config_overrides: {config_cls.__name__} has no field(s) {', '.join(unknown)}"
        )
    return overrides
