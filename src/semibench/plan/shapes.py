"""What the planner feeds a backbone: the input shape of a run's views, the token lengths text
batches keep after trimming, and the evaluated set sizes."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: official test-set sizes (task docstrings); validation comes from ``val_per_class`` or here
TEST_SIZES: dict[str, int] = {
    "cifar10": 10_000, "cifar100": 10_000, "svhn": 26_032, "stl10": 8_000, "eurosat": 5_400,
    "tissuemnist": 47_280, "semi_aves": 4_000, "imdb": 25_000, "ag_news": 7_600,
    "amazon_review": 65_000, "yahoo_answers": 60_000, "yelp_review": 50_000, "gtzan": 1_500,
    "urbansound8k": 837, "superb_ks": 2_567, "fsdnoisy18k": 847, "esc50": 400,
    "mnist": 1_000, "newsgroups": 400, "keywords": 500,
}  # fmt: skip
#: validation sets that are the source's own split (``validation_source = "prepared"`` and no
#: per-class count): their documented sizes
PREPARED_VAL_SIZES: dict[str, int] = {
    "tissuemnist": 23_640, "semi_aves": 2_000, "gtzan": 1_500, "urbansound8k": 816,
    "superb_ks": 2_577, "fsdnoisy18k": 100, "esc50": 400,
}  # fmt: skip
#: stored image side of tasks whose views do not resize
IMAGE_SIDES: dict[str, int] = {"mnist": 28}
#: stored channels of the grey-scale image tasks (the others are RGB)
IMAGE_CHANNELS: dict[str, int] = {"mnist": 1, "tissuemnist": 1}


def sample_shape(run: dict[str, Any], model: nn.Module) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape (without the batch) and dtype of one model input of ``run``'s views."""
    from semibench.tasks import create_task
    from semibench.variants import run_base_task

    task = create_task(run_base_task(run))
    aug = run["augment"]
    if task.domain == "image":
        side = (aug.get("crop_size") or aug.get("resize") or _declared(task, "image_size")
                or IMAGE_SIDES.get(task.name, 32))
        chans = 3 if aug.get("as_rgb") else (
            input_channels(model) or _declared(task, "channels")
            or IMAGE_CHANNELS.get(task.name, 3))
        return (int(chans), int(side), int(side)), torch.float32
    if task.domain == "text":
        return (int(getattr(model, "max_length", 512)),), torch.long
    from semibench.augment import build_views

    rate = int(aug.get("sample_rate", 16000))
    wave = torch.zeros(1, int(round(float(aug.get("crop_seconds", 1.0)) * rate)))
    if aug.get("features", "logmel") == "waveform":
        return tuple(wave.shape[1:]), torch.float32
    view = build_views("audio", aug)["eval"]
    return tuple(view(wave, torch.Generator().manual_seed(0)).shape[1:]), torch.float32


def input_channels(model: nn.Module | None) -> int | None:
    """The channels the backbone takes: its first convolution's (None without one, or without
    a model). What the views feed it must match them (``in_chans``), so the planner feeds the
    same."""
    for module in model.modules() if model is not None else ():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None


def _declared(task: Any, name: str) -> Any:
    """An image setting a task declares (``channels``, ``image_size``) on itself or in its
    ``from_files`` declaration (``task.spec``); None when it declares none."""
    for holder in (task, getattr(task, "spec", None)):
        value = getattr(holder, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def trimmed_text_length(model: nn.Module, task_name: str, prepared_root: Path, batch: int,
                        sample: int = 2000, draws: int = 200) -> int | None:
    """The mean token length a text backbone keeps after trimming a batch's padding (its
    longest text, rounded up to ``trim_multiple``) for random batches of ``batch`` texts (as
    training draws them), measured on up to ``sample`` prepared training texts; None without
    prepared data or trimming."""
    lengths = _token_lengths(model, task_name, prepared_root, sample)
    if lengths is None:
        return None
    rng = np.random.default_rng(0)
    longest = lengths.tokens[rng.integers(0, len(lengths.tokens), (draws, batch))].max(axis=1)
    return lengths.kept(longest)


def evaluated_text_length(model: nn.Module, task_name: str, prepared_root: Path, batch: int,
                          sample: int = 2000) -> int | None:
    """:func:`trimmed_text_length` for evaluation batches, which follow the backbone's
    ``eval_order`` (texts sorted by length: each batch keeps about its texts' own length).
    The sample stands for the whole set: sorted, it is cut into batches of ``batch`` x
    sample / set size texts. A backbone that does not sort (``sorts_eval_by_length``): random
    batches, as stored."""
    lengths = _token_lengths(model, task_name, prepared_root, sample)
    if lengths is None:
        return None
    if not getattr(model, "sorts_eval_by_length", False):
        return trimmed_text_length(model, task_name, prepared_root, batch, sample)
    chunk = max(1, round(batch * len(lengths.tokens) / lengths.total))
    ranked = np.sort(lengths.tokens)[::-1]
    return lengths.kept(ranked[::chunk])  # each batch's first (longest) text


@dataclass(frozen=True)
class _TokenLengths:
    tokens: np.ndarray  # real tokens per sampled text
    total: int  # texts in the prepared training set
    multiple: int
    max_length: int

    def kept(self, longest: np.ndarray) -> int:
        """The mean width a batch keeps, from its longest texts."""
        kept = np.minimum(-(-longest // self.multiple) * self.multiple, self.max_length)
        return int(round(float(kept.mean())))


def _token_lengths(model: nn.Module, task_name: str, prepared_root: Path,
                   sample: int) -> _TokenLengths | None:
    multiple = getattr(model, "trim_multiple", 0)
    path = Path(prepared_root) / task_name / "data.npz"
    if not multiple or not path.is_file():
        return None
    stat = path.stat()
    return _read_token_lengths(model, str(path), stat.st_mtime_ns, stat.st_size, sample)


@functools.lru_cache(maxsize=8)  # every job of a task, training and evaluation, reads it once
def _read_token_lengths(model: nn.Module, path: str, _mtime_ns: int, _size: int,
                        sample: int) -> _TokenLengths:
    with np.load(path, allow_pickle=False) as data:
        texts = np.asarray(data["train_x"]).reshape(len(data["train_x"]), -1)[:, 0]
    rng = np.random.default_rng(0)
    picked = texts[rng.permutation(len(texts))[:sample]]
    ids = model.prepare_inputs(picked)
    tokens = (ids != model.tokenizer.pad_token_id).sum(dim=1).numpy()
    return _TokenLengths(tokens, len(texts), int(model.trim_multiple), int(ids.shape[1]))


def eval_sizes(task_name: str, prepared_root: Path | None = None) -> tuple[int, int, str]:
    """(validation, test) samples evaluated at every evaluation, and where the numbers came
    from: the prepared ``meta.json``, the task's documented sizes, or an assumption."""
    from semibench.tasks import create_task

    task = create_task(task_name)
    if prepared_root is not None:
        meta_path = Path(prepared_root) / task_name / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            val = meta.get("num_val") or task.val_per_class * task.num_classes
            return int(val), int(meta["num_test"]), "prepared meta.json"
    val = task.val_per_class * task.num_classes or PREPARED_VAL_SIZES.get(task_name)
    test = TEST_SIZES.get(task_name)
    if val is not None and test is not None:
        return int(val), int(test), "documented sizes"
    pool = task.num_train or 10_000
    return int(val or pool // 10), int(test or pool // 5), "assumed (10 % / 20 % of the pool)"
