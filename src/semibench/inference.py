"""Use a trained run: load its model, predict raw files, re-evaluate it on a test set.

A finished run directory holds everything needed: ``metrics.json`` (the resolved settings:
task, backbone and its arguments, view settings; the class names; ``input_format``, what one
stored sample looks like) and the weights the trainer evaluated (``model_best.pt``, the model
with the lowest validation error, or ``model_last.pt``; the EMA weights when the run used EMA),
those of them that ``train.keep_weights`` kept (default: ``model_best.pt`` only).

A raw input goes through exactly what a test sample went through during training:

    raw file -> the stored format of the task (image: uint8 [C, H, W] at the stored size;
                audio: mono float32 at the stored rate and length; text: the string)
             -> backbone.prepare_inputs (e.g. tokenisation) -> the deterministic "eval" view
             -> model -> softmax

so that ``evaluate_run`` on the task's prepared test set reproduces ``metrics.json`` exactly
on the CPU (same code path, batch size and thread count as the trainer's evaluation).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semibench.errors import SemiBenchError
from semibench.metrics_file import MetricsFormatError, read_metrics

logger = logging.getLogger(__name__)

CHECKPOINTS = {"best": "model_best.pt", "last": "model_last.pt"}
#: file suffixes a folder given to ``predict`` is searched for, per domain (images: every
#: suffix PIL reads; audio: what the own-data tasks read, semibench.tasks._files); a file
#: named on its own is read whatever its suffix
TEXT_SUFFIXES = (".txt", ".text")
#: how many file names a one-line message lists before "..."
SHOW = 10


class RunError(SemiBenchError, RuntimeError):
    """A run directory, checkpoint or input cannot be used; the message names the file."""


class UnreadableInput(RunError):
    """One input file cannot be decoded (a broken image, a clip libsndfile rejects, text that
    is not UTF-8): ``predict_files`` skips it when asked to instead of stopping."""

    def __init__(self, message: str, path: str | Path = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = str(path)
        self.reason = reason or message

    @classmethod
    def of(cls, path: str | Path, reason: str) -> UnreadableInput:
        """``path: reason``, keeping both for the list of skipped files."""
        return cls(f"{path}: {reason}", path, reason)


def _folder_suffixes(domain: str) -> frozenset[str]:
    from semibench.tasks._files import AUDIO_SUFFIXES, image_suffixes

    return {"image": image_suffixes, "audio": lambda: AUDIO_SUFFIXES,
            "text": lambda: frozenset(TEXT_SUFFIXES)}[domain]()


def _reason(err: BaseException) -> str:
    """An exception as a short reason, whole words only: its first sentence when that is short
    (torch's and PIL's messages run to paragraphs), else its type."""
    text = " ".join(str(err).split())
    first = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {first}" if first and len(first) <= 120 else type(err).__name__


def shorten(names: Sequence[str], show: int = SHOW) -> str:
    """``a, b, c`` or ``a, b, ... (N in all)``: file names for a one-line message."""
    more = f", ... ({len(names)} in all)" if len(names) > show else ""
    return ", ".join(names[:show]) + more


# --------------------------------------------------------------------------- raw inputs


def image_to_stored(image: Any, shape: Sequence[int], name: str = "image") -> np.ndarray:
    """A PIL image as the task stores images: uint8 ``[C, H, W]`` of ``shape``, grey or RGB as
    the task's images are, resized with PIL's bilinear filter when its size differs."""
    from PIL import Image

    channels, height, width = (int(n) for n in shape)
    if channels not in (1, 3):
        raise RunError(f"{name}: the task stores {channels}-channel images; only grey (1) and "
                       "RGB (3) images can be converted")
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def load_image(path: str | Path, shape: Sequence[int]) -> np.ndarray:
    """An image file as the task stores images (:func:`image_to_stored`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image_to_stored(image, shape, str(path))
    except UnidentifiedImageError:
        raise UnreadableInput.of(path, "not a readable image (no format PIL reads)") from None
    except (OSError, ValueError, SyntaxError) as err:
        # PIL decodes lazily: a truncated file fails in convert(), not in open()
        raise UnreadableInput.of(path, f"not a readable image ({_reason(err)})") from None


def load_audio(path: str | Path, sample_rate: int, num_samples: int) -> np.ndarray:
    """An audio file as the task stores clips (semibench.audio_io, the one audio loader): mono
    float32 in [-1, 1] at ``sample_rate``, its first ``num_samples`` samples, zero-padded at
    the end."""
    from semibench.audio_io import AudioDecodeError, ClipConverter

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UnreadableInput.of(path, f"cannot read ({err.strerror or err})") from None
    try:
        return ClipConverter(sample_rate=sample_rate, length=num_samples).load(data, str(path))
    except AudioDecodeError as err:
        reason = str(err).removeprefix(f"{path}:").strip()
        raise UnreadableInput.of(path, reason or "not a readable audio file") from None


def read_text_lines(path: str | Path) -> list[tuple[int, str]]:
    """The non-empty lines of a text file, one input each, with their line numbers in the file
    (1-based, empty lines counted, split at newlines only: what an editor or ``sed -n 4p``
    shows; a UTF-8 byte order mark is dropped)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UnreadableInput.of(path, f"cannot read as UTF-8 text ({_reason(err)})") from None
    return [(number, line.strip()) for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()]


def _folder_files(folder: Path, domain: str) -> list[Path]:
    """The files of a folder that are read as ``domain`` inputs, sorted, recursively (hidden
    files and folders and system litter skipped, as in own-data folders); files with another
    suffix are counted in a note, by suffix."""
    from semibench.tasks._files import walk_files

    allowed = _folder_suffixes(domain)
    found, ignored = [], Counter()
    for rel in walk_files(folder):
        suffix = Path(rel).suffix.lower()
        if suffix in allowed:
            found.append(folder / rel)
        else:
            ignored[suffix or "(no suffix)"] += 1
    what = ", ".join(TEXT_SUFFIXES) if domain == "text" else (
        ".wav, .flac, .ogg, .mp3 and other formats libsndfile reads" if domain == "audio"
        else ".png, .jpg, .bmp, .tif, .webp and other formats PIL reads")
    others = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(ignored.items()))
    if not found:
        has = f"; it has {sum(ignored.values())} other file(s) ({others})" if ignored else ""
        raise RunError(f"{folder}: no {domain} files ({what}) in this folder{has}")
    if ignored:
        logger.info("%s: read %d %s file(s), ignored %d other file(s) (%s); a folder is read "
                    "for %s only, a file named on its own whatever its suffix", folder,
                    len(found), domain, sum(ignored.values()), others, what)
    return found


def expand_inputs(inputs: Iterable[str | Path], domain: str) -> list[Path]:
    """Files and folders -> the files, in order (a folder's files of the domain's suffixes,
    sorted, recursively); a name that does not exist or a folder without inputs is an
    error."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += _folder_files(path, domain)
        elif path.is_file():
            files.append(path)
        else:
            raise RunError(f"{path}: no such file or folder")
    return files


# --------------------------------------------------------------------------- the model


def kept_checkpoints(metrics: dict[str, Any]) -> tuple[str, ...]:
    """The checkpoints ("best", "last") whose weights a finished run kept
    (``train.keep_weights``, recorded in metrics.json; a run from before the setting kept
    both)."""
    from semibench.train.config import KEEP_WEIGHTS

    return KEEP_WEIGHTS.get(str(metrics.get("keep_weights", "both")), ("best", "last"))


def check_kept(run_dir: Path, metrics: dict[str, Any], checkpoint: str) -> None:
    """One line when the run did not keep ``checkpoint``'s weights (``train.keep_weights``)."""
    kept = kept_checkpoints(metrics)
    if checkpoint in kept:
        return
    setting = f"train.keep_weights={metrics.get('keep_weights')}"
    instead = (f"use --checkpoint {kept[0]}, or " if kept else "")
    wanted = "both" if kept else checkpoint
    raise RunError(f"{run_dir / CHECKPOINTS[checkpoint]}: not kept: the run was trained with "
                   f"{setting}, which keeps "
                   f"{' and '.join(CHECKPOINTS[k] for k in kept) or 'no weights'}; {instead}"
                   f"set train.keep_weights: {wanted} and retrain the run")


def _state_dict(path: Path, keep_heads: bool = False,
                kept: tuple[str, ...] = ("best", "last")) -> dict[str, torch.Tensor]:
    if not path.is_file():
        files = " and ".join(CHECKPOINTS[k] for k in kept)
        raise RunError(f"{path}: missing; the run kept {files}: copy it again from where the "
                       "run trained, or retrain the run")
    others = [name for key, name in CHECKPOINTS.items() if name != path.name and key in kept]
    remedy = "copy it again from where the run trained, or retrain the run" + (
        f" (its other checkpoint, {others[0]}, may still load)" if others else "")
    if path.stat().st_size == 0:
        raise RunError(f"{path}: an empty file, not a checkpoint (an interrupted save or copy); "
                       f"{remedy}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a corrupt file is one fault, whatever torch says
        raise RunError(f"{path}: not a readable checkpoint ({_reason(err)}); the file is "
                       f"damaged or incomplete: {remedy}") from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: holds a {type(state).__name__}, not a model state dict; "
                       f"{remedy}")
    # an algorithm's extra heads (projection heads etc.) are not needed to classify, unless
    # it predicts with one (keep_heads: ABC's balanced classifier)
    return {k: v for k, v in state.items() if keep_heads or not k.startswith("ssl_heads.")}


@dataclass
class Prediction:
    """The ``top_k`` classes of one input, most probable first."""

    input: str
    classes: list[str]
    probabilities: list[float]


@dataclass
class LoadedRun:
    """A trained model ready for inference: ``model`` (eval mode), ``preprocess`` (raw
    inputs -> model inputs), ``classes`` (the names of the model's outputs)."""

    run_dir: Path
    metrics: dict[str, Any]
    checkpoint: str
    model: torch.nn.Module
    view: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def classes(self) -> list[str]:
        return list(self.metrics["classes"])

    @property
    def domain(self) -> str:
        return str(self.metrics["domain"])

    @property
    def input_format(self) -> dict[str, Any]:
        return dict(self.metrics.get("input_format") or {})

    @property
    def eval_batch_size(self) -> int:
        return int(self.metrics["config"]["train"]["eval_batch_size"])

    def to_stored(self, items: Sequence[Any]) -> np.ndarray:
        """Raw inputs as the task stores samples: file paths; for text, strings; for images,
        PIL images or uint8 arrays ``[C, H, W]`` of the stored shape; for audio, float arrays
        of the stored length."""
        if self.domain == "text":
            return np.asarray([str(t) for t in items])
        if self.domain not in ("image", "audio"):
            raise RunError(f"unknown domain {self.domain!r}")
        return np.stack([self.stored_sample(x, f"[{i}]") for i, x in enumerate(items)])

    def stored_sample(self, x: Any, name: str = "") -> np.ndarray:
        """One image or audio input (a file path, a PIL image, an array) in the stored
        format; a file that cannot be decoded raises :class:`UnreadableInput`."""
        fmt = self.input_format
        key = "shape" if self.domain == "image" else "sample_rate"
        if key not in fmt and not isinstance(x, np.ndarray):
            raise RunError(f"{self.run_dir / 'metrics.json'}: no input_format (a run from an "
                           f"older SemiBench); give arrays in the stored format")
        if self.domain == "image":
            from PIL import Image

            if isinstance(x, Image.Image):
                return image_to_stored(x, fmt["shape"], name or "image")
            if not isinstance(x, np.ndarray):
                return load_image(x, fmt["shape"])
            expected, dtype = tuple(fmt.get("shape", x.shape)), np.uint8
            if x.dtype.kind == "f":
                raise RunError(f"{name or 'array'}: float pixels; give uint8 (0-255) arrays "
                               f"{list(expected)}, as the task stores images, or PIL images")
        else:
            if not isinstance(x, np.ndarray):
                return load_audio(x, fmt["sample_rate"], fmt["num_samples"])
            expected, dtype = ((int(fmt["num_samples"]),) if "num_samples" in fmt
                               else x.shape), np.float32
        if x.shape != expected:
            raise RunError(f"{name or 'array'}: shape {list(x.shape)}, the task stores "
                           f"{list(expected)}; give files, or arrays in the stored format")
        return np.asarray(x, dtype=dtype)

    def prepare(self, stored: Any) -> torch.Tensor:
        """Stored samples -> the stored tensors the eval view takes (the trainer's step)."""
        return self.model.prepare_inputs(stored)

    def preprocess(self, items: Sequence[Any]) -> torch.Tensor:
        """Raw inputs -> the model's input batch, exactly as a test sample in training."""
        x = self.prepare(self.to_stored(items))
        return self.view(x, torch.Generator().manual_seed(0))

    def predict_proba(self, items: Sequence[Any]) -> torch.Tensor:
        """Class probabilities ``[N, num_classes]`` (float32, on the CPU)."""
        from semibench.train.evaluate import all_logits

        x = self.prepare(self.to_stored(items))
        return all_logits(self.model, x, self.view, batch_size=self.eval_batch_size,
                          device=self.device, autocast_dtype=None).softmax(dim=-1) \
            if len(x) else torch.empty((0, len(self.classes)))

    def predict(self, items: Sequence[Any], top_k: int = 1,
                names: Sequence[str] | None = None) -> list[Prediction]:
        """The ``top_k`` most probable classes of each input (every class, ranked, when
        ``top_k`` exceeds their number)."""
        if top_k < 1:
            raise RunError(f"top_k={top_k}: must be at least 1")
        probs = self.predict_proba(items)
        k = min(top_k, len(self.classes))
        top = probs.topk(k, dim=-1)
        labels = names if names is not None else [str(x) if isinstance(x, str | Path)
                                                  else f"[{i}]" for i, x in enumerate(items)]
        return [Prediction(str(name), [self.classes[int(c)] for c in idx],
                           [float(p) for p in values])
                for name, idx, values in zip(labels, top.indices, top.values, strict=True)]


def read_run_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise RunError(f"{path}: missing; is {run_dir} a finished run directory "
                       "(results/<benchmark>/runs/<task>/<num_labels>/<algorithm>/seed<seed>)?")
    data = read_metrics(path)
    for key in ("config", "classes"):
        if not isinstance(data.get(key), dict if key == "config" else list):
            raise MetricsFormatError(f"{path}: malformed metrics file: missing field {key!r}")
    return data


def trained_task(metrics: dict[str, Any]) -> str:
    """The registered task whose prepared data a run read (:func:`read_run_metrics`'s
    result; a variant's run names it in its settings)."""
    from semibench.variants import run_base_task

    return run_base_task({"task": metrics["task"], **metrics["config"]})


def load_run(path: str | Path, checkpoint: str = "best",
             device: str | torch.device = "cpu") -> LoadedRun:
    """The model of a finished run (``checkpoint``: "best" on validation or "last"), in eval
    mode on ``device``, with its preprocessing and class names."""
    from semibench.augment import build_views
    from semibench.backbones import create_backbone
    from semibench.plugins import PluginError, load_plugins
    from semibench.registry import UnknownNameError

    run_dir = Path(path)
    if checkpoint not in CHECKPOINTS:
        raise RunError(f"checkpoint={checkpoint!r}: allowed: {', '.join(CHECKPOINTS)}")
    metrics = read_run_metrics(run_dir)
    config = metrics["config"]
    # a backbone or algorithm from a plugin: the run's settings name the plugins it was
    # trained with
    try:
        load_plugins(list(config.get("plugins") or {}))
    except PluginError as err:
        raise RunError(f"{run_dir / 'metrics.json'}: {err}") from None
    check_kept(run_dir, metrics, checkpoint)
    algorithm = _composed_algorithm(metrics)
    state = _state_dict(run_dir / CHECKPOINTS[checkpoint], keep_heads=algorithm is not None,
                        kept=kept_checkpoints(metrics))
    try:
        model = create_backbone(config["backbone"], len(metrics["classes"]),
                                **config.get("backbone_args", {}))
    except UnknownNameError as err:
        raise RunError(f"{run_dir / 'metrics.json'}: {err} (a plugin not installed here?)"
                       ) from None
    if algorithm is not None:  # its heads, so that its predictor finds them
        heads = algorithm.build_modules(model.num_features)
        if heads:
            model.ssl_heads = torch.nn.ModuleDict(heads)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RunError(f"{run_dir / CHECKPOINTS[checkpoint]}: does not fit backbone "
                       f"{config['backbone']!r} ({str(err).splitlines()[0][:160]})") from None
    device = torch.device(device)
    model = model.to(device).eval()
    if metrics.get("memory_format") == "channels_last":  # as the trainer evaluated it
        model = model.to(memory_format=torch.channels_last)
    views = build_views(metrics["domain"], {**config.get("augment", {}), **model.view_spec()})
    if algorithm is not None:  # what the trainer evaluated (e.g. ABC's balanced head)
        model = algorithm.predictor(model).eval()
    return LoadedRun(run_dir=run_dir, metrics=metrics, checkpoint=checkpoint, model=model,
                     view=views["eval"], device=device)


def _composed_algorithm(metrics: dict[str, Any]) -> Any:
    """A run with an imbalance method: its algorithm, built by the composition root for its
    heads and predictor (None for any other run)."""
    import semibench.compose as compose

    composition, params, imbalance_params = compose.settings_composition(metrics["config"])
    if composition.imbalance is None:
        return None
    return compose.create_algorithm(composition, params, imbalance_params,
                                    domain=metrics["domain"], num_classes=len(metrics["classes"]),
                                    num_iterations=1, num_ulb=1)


# --------------------------------------------------------------------------- predict


@dataclass
class Skipped:
    """An input file that ``predict_files`` could not decode, and why."""

    input: str
    reason: str


@dataclass
class FilePredictions:
    """What :func:`predict_files` made of its inputs: the files it found, a prediction per
    input (per non-empty line of a text file) and the unreadable files it skipped."""

    files: list[Path]
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def predict_files(run: LoadedRun, inputs: Iterable[str | Path], top_k: int = 1,
                  chunk: int = 256, skip_unreadable: bool = False) -> FilePredictions:
    """Predictions for files and folders (text files: one input per non-empty line, named
    ``file:line`` with the file's own line number), ``chunk`` inputs at a time so that a large
    folder fits in memory. A file that cannot be decoded raises :class:`UnreadableInput`, or
    with ``skip_unreadable`` is left out and listed in ``skipped``."""
    if top_k < 1:
        raise RunError(f"top_k={top_k}: must be at least 1")
    out = FilePredictions(expand_inputs(inputs, run.domain))
    items: list[Any] = []
    names: list[str] = []

    def flush() -> None:
        if items:
            out.predictions.extend(run.predict(items, top_k, names=names))
            items.clear()
            names.clear()

    for path in out.files:
        try:
            if run.domain == "text":
                loaded = [(line, f"{path}:{number}") for number, line in read_text_lines(path)]
            else:
                loaded = [(run.stored_sample(path, str(path)), str(path))]
        except UnreadableInput as err:
            if not skip_unreadable:
                raise
            out.skipped.append(Skipped(str(path), err.reason))
            continue
        for item, name in loaded:
            items.append(item)
            names.append(name)
            if len(items) >= chunk:
                flush()
    flush()
    return out


def predictions_csv(predictions: Sequence[Prediction]) -> str:
    """``input,class,probability`` and, for top-k > 1, ``class_2,probability_2``, ..."""
    import csv
    import io

    k = max((len(p.classes) for p in predictions), default=1)
    header = ["input", "class", "probability"]
    for i in range(2, k + 1):
        header += [f"class_{i}", f"probability_{i}"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for p in predictions:
        row = [p.input]
        for name, prob in zip(p.classes, p.probabilities, strict=True):
            row += [name, f"{prob:.6f}"]
        writer.writerow(row)
    return buffer.getvalue()


def skipped_csv(skipped: Sequence[Skipped]) -> str:
    """``input,reason``: the files ``predict_files`` skipped."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["input", "reason"])
    writer.writerows([s.input, s.reason] for s in skipped)
    return buffer.getvalue()


# --------------------------------------------------------------------------- evaluate


@dataclass
class Evaluation:
    """A checkpoint's test metrics now, and where they differ from ``metrics.json``."""

    checkpoint: str
    fields: dict[str, Any]
    recorded: dict[str, Any]
    differences: list[str]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is None and b is None
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def evaluate_run(run_dir: str | Path, prepared_dir: str | Path, task: str | None = None,
                 checkpoints: Sequence[str] | None = None,
                 device: str = "cpu") -> tuple[list[Evaluation], str]:
    """Re-evaluate ``run_dir``'s checkpoints (default: every one the run kept,
    ``train.keep_weights``) on the test set in ``prepared_dir`` with the trainer's own
    evaluation (same batch size). Returns the evaluations and a note: why the numbers cannot
    be compared with metrics.json ("" when they can: same task, same prepared data, the run
    evaluated on the CPU)."""
    from semibench.metrics_file import json_safe
    from semibench.tasks import load_prepared, verify_prepared
    from semibench.train.evaluate import evaluate, record_fields

    run_dir = Path(run_dir)
    metrics = read_run_metrics(run_dir)
    if checkpoints is None:
        checkpoints = kept_checkpoints(metrics)
        if not checkpoints:
            raise RunError(f"{run_dir}: the run kept no weights (train.keep_weights=none): "
                           "nothing to evaluate; set train.keep_weights: best and retrain it")
    for name in checkpoints:  # before any data is read
        check_kept(run_dir, metrics, name)
    trained_on = trained_task(metrics)
    task = task or trained_on
    data_sha = verify_prepared(prepared_dir)
    data = load_prepared(prepared_dir)
    if list(data.meta["classes"]) != list(metrics["classes"]):
        raise RunError(f"{prepared_dir}: task {data.meta.get('name', task)!r} has classes "
                       f"{data.meta['classes'][:5]}..., the run's model predicts "
                       f"{metrics['classes'][:5]}...: not the same label space")
    reasons = []
    if data.meta.get("name", task) != trained_on:
        reasons.append(f"another task ({data.meta.get('name', task)}, the run: "
                       f"{trained_on})")
    elif data_sha != metrics.get("inputs", {}).get("data_sha256"):
        reasons.append("other prepared data than the run's (data_sha256 differs)")
    if metrics.get("device") != "cpu" or torch.device(device).type != "cpu":
        reasons.append(f"the run evaluated on {metrics.get('device')}, this on {device}")
    out = []
    for name in checkpoints:
        run = load_run(run_dir, name, device)
        x = run.prepare(data.test_x)
        y = torch.as_tensor(data.test_y)
        result = evaluate(run.model, x, y, run.view, num_classes=len(run.classes),
                          batch_size=run.eval_batch_size, device=run.device,
                          autocast_dtype=None)
        fields = json_safe(record_fields(result))
        recorded = metrics[name]
        differences = [key for key, value in fields.items()
                       if key in recorded and not _same(value, recorded[key])]
        out.append(Evaluation(name, fields, {k: recorded.get(k) for k in fields}, differences))
    if not reasons and torch.get_num_threads() != metrics.get("threads", torch.get_num_threads()):
        warnings.warn(f"{torch.get_num_threads()} threads, the run used {metrics['threads']}: "
                      "float sums may differ in the last bit", stacklevel=2)
    return out, "; ".join(reasons)
