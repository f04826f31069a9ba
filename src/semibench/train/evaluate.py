"""Evaluation on a held-out set: error, top-5 error, balanced error, macro-F1 and per-class
accuracy, all in percent.

Definitions (what ``metrics.json`` records for the test set of every evaluation):

* ``error``: 100 x the fraction of samples whose arg-max class is wrong.
* ``top5_error``: 100 x the fraction whose true class is not among the five highest logits
  (ImageNet's top-5). With five classes or fewer every class is in the top five, so the value
  would be 0 whatever the model does: it is recorded as ``None`` ("not applicable").
* ``balanced_error``: 100 - the mean per-class recall over the classes present in the
  evaluated set (scikit-learn's ``balanced_accuracy_score``), so that a model that ignores
  rare classes is not hidden by the frequent ones.
* ``macro_f1``: 100 x the unweighted mean of the per-class F1 = 2 TP / (2 TP + FP + FN) over
  the classes that occur in the labels or the predictions (scikit-learn's ``f1_score(...,
  average="macro")`` with ``zero_division=0``). Higher is better, unlike the others.
* ``gmean_recall``: 100 x the geometric mean of the per-class recalls over the classes present
  (the long-tailed literature's G-mean): one class never predicted right makes it 0, which the
  arithmetic mean hides. Higher is better.
* long-tailed runs only (:func:`group_fields`): ``head_accuracy``, ``medium_accuracy`` and
  ``tail_accuracy``, the mean per-class accuracy over the classes ranked by their labelled
  training count and cut into thirds (:func:`class_groups`).

Everything is computed from the confusion matrix and the top-k hits on the CPU in float64,
so that re-evaluating a checkpoint (``semibench evaluate``) reproduces the numbers exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from semibench.augment import ViewFn
from semibench.metrics_file import METRICS  # noqa: F401  (the table; recorded here)

#: k of the top-k error
TOP_K = 5


@dataclass
class EvalResult:
    error: float
    per_class_accuracy: list[float]
    top5_error: float | None = None
    balanced_error: float = float("nan")
    macro_f1: float = float("nan")
    gmean_recall: float = float("nan")


def classification_metrics(y: torch.Tensor, topk: torch.Tensor, num_classes: int,
                           pred: torch.Tensor | None = None) -> EvalResult:
    """The metrics of the module docstring from the labels ``y`` [N], the ``topk`` class
    indices [N, k] (k = min(5, num_classes)) and the predictions ``pred`` [N] (default: column
    0 of ``topk``; ``evaluate`` passes the arg-max, whose tie-break, the first index, topk
    does not promise)."""
    y = y.to(torch.long).cpu()
    topk = topk.to(torch.long).cpu()
    pred = topk[:, 0] if pred is None else pred.to(torch.long).cpu()
    confusion = torch.bincount(y * num_classes + pred, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes).to(torch.float64)
    tp = confusion.diagonal()
    support = confusion.sum(dim=1)  # true samples per class
    predicted = confusion.sum(dim=0)
    present = support > 0
    per_class = [float(100.0 * tp[c] / support[c]) if present[c] else float("nan")
                 for c in range(num_classes)]
    n = float(support.sum())
    error = 100.0 * (1.0 - float(tp.sum()) / n) if n else float("nan")
    balanced = (100.0 * (1.0 - float((tp[present] / support[present]).mean()))
                if present.any() else float("nan"))
    occurs = present | (predicted > 0)
    f1 = 2 * tp[occurs] / (support[occurs] + predicted[occurs])  # 2TP / (2TP + FP + FN)
    macro_f1 = 100.0 * float(f1.mean()) if occurs.any() else float("nan")
    recalls = tp[present] / support[present]
    gmean = (100.0 * float(torch.exp(torch.log(recalls).mean())) if bool((recalls > 0).all())
             else 0.0) if present.any() else float("nan")
    top5 = None
    if num_classes > TOP_K:
        hit = (topk[:, :TOP_K] == y[:, None]).any(dim=1)
        top5 = 100.0 * (1.0 - float(hit.to(torch.float64).mean())) if n else float("nan")
    return EvalResult(error=error, per_class_accuracy=per_class, top5_error=top5,
                      balanced_error=balanced, macro_f1=macro_f1, gmean_recall=gmean)


def eval_order(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The row order in which to evaluate ``x``, from the first module of ``model`` (wrappers
    such as an imbalance method's head included) that defines ``eval_order``: a text backbone
    groups texts of similar length so that the padding it trims per batch is small. None: the
    stored order. The order is a function of the model and the data alone, so that training,
    ``evaluate`` and ``predict`` batch a sample alike."""
    for module in model.modules():
        order = getattr(module, "eval_order", None)
        if callable(order):
            return order(x)
    return None


def iter_logits(
    model: nn.Module,
    x: torch.Tensor,
    view: ViewFn,
    *,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(rows, logits)`` batch by batch: the positions in ``x`` (on the CPU) and the model's
    logits for them (on ``device``), in eval mode, through the deterministic eval view: the one
    path by which training, ``evaluate`` and ``predict`` see an input. The batches follow
    :func:`eval_order`; every row comes exactly once."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)  # the eval view is deterministic anyway
    order = eval_order(model, x)
    rows_all = torch.arange(len(x)) if order is None else order.cpu()
    try:
        for start in range(0, len(x), batch_size):
            rows = rows_all[start : start + batch_size]
            # grad mode is thread state: never leave it switched off across a yield
            with torch.no_grad():
                part = (x[start : start + batch_size] if order is None
                        else x[order[start : start + batch_size]])
                inputs = view(part, generator).to(device)
                with torch.autocast(device.type, dtype=autocast_dtype,
                                    enabled=autocast_dtype is not None):
                    logits = model(inputs)
            yield rows, logits
    finally:
        model.train(was_training)


def all_logits(model: nn.Module, x: torch.Tensor, view: ViewFn, *, batch_size: int,
               device: torch.device, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """Every row's logits ``[N, C]`` (float32, on the CPU) in the order of ``x``."""
    rows, parts = [], []
    for r, logits in iter_logits(model, x, view, batch_size=batch_size, device=device,
                                 autocast_dtype=autocast_dtype):
        rows.append(r)
        parts.append(logits.float().cpu())
    if not parts:
        raise ValueError("no inputs")
    logits = torch.cat(parts)
    out = torch.empty_like(logits)
    out[torch.cat(rows)] = logits  # back in the order of ``x``
    return out


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    view: ViewFn,
    *,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> EvalResult:
    k = min(TOP_K, num_classes)
    rows, preds, tops = [], [], []
    for r, logits in iter_logits(model, x, view, batch_size=batch_size, device=device,
                                 autocast_dtype=autocast_dtype):
        rows.append(r)
        preds.append(logits.argmax(dim=-1).cpu())
        tops.append(logits.float().topk(k, dim=-1).indices.cpu())
    if not preds:
        empty = torch.empty(0, dtype=torch.long)
        return classification_metrics(empty, empty.view(0, k), num_classes)
    # the metrics do not depend on the order: the labels follow the batches'
    return classification_metrics(y.cpu()[torch.cat(rows)], torch.cat(tops), num_classes,
                                  pred=torch.cat(preds))


def record_fields(result: EvalResult, prefix: str = "test_") -> dict[str, object]:
    """An evaluation as the fields of a ``metrics.json`` record (``best`` or ``last``)."""
    return {
        f"{prefix}error": result.error,
        f"{prefix}top5_error": result.top5_error,
        f"{prefix}balanced_error": result.balanced_error,
        f"{prefix}macro_f1": result.macro_f1,
        f"{prefix}gmean_recall": result.gmean_recall,
        f"{prefix}per_class_accuracy": result.per_class_accuracy,
    }


#: the class groups of a long-tailed run, most labelled first
GROUPS = ("head", "medium", "tail")


def class_groups(lb_class_counts: list[int]) -> dict[str, list[int]]:
    """Classes ranked by labelled count (most first, ties by index), cut into thirds as even
    as possible, the larger parts first (10 classes: 4 head, 3 medium, 3 tail). Ranks, not
    absolute thresholds (ImageNet-LT's > 100 / < 20 images): label budgets in SSL are far
    smaller, and thirds give every group classes for any budget."""
    order = sorted(range(len(lb_class_counts)), key=lambda c: (-lb_class_counts[c], c))
    n, parts = len(order), len(GROUPS)
    sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
    groups, start = {}, 0
    for name, size in zip(GROUPS, sizes, strict=True):
        groups[name] = sorted(order[start:start + size])
        start += size
    return groups


def group_fields(result: EvalResult, groups: dict[str, list[int]],
                 prefix: str = "test_") -> dict[str, float | None]:
    """``<prefix>head_accuracy`` etc.: the mean accuracy of each group's classes that have
    test samples (None for a group with none)."""
    fields: dict[str, float | None] = {}
    for name in GROUPS:
        values = [result.per_class_accuracy[c] for c in groups[name]
                  if c < len(result.per_class_accuracy)
                  and result.per_class_accuracy[c] == result.per_class_accuracy[c]]  # not NaN
        fields[f"{prefix}{name}_accuracy"] = sum(values) / len(values) if values else None
    return fields
