"""``metrics.json``, the record of one finished run: one JSON schema
(``semibench/data/metrics.schema.json``), checked when the trainer writes the file and when
the report reads it, so the two cannot drift apart. Every fault is one line naming the file
and the field."""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from json import JSONDecodeError
from pathlib import Path
from typing import Any

import jsonschema

from semibench.errors import SemiBenchError
from semibench.io import atomic_write_json, read_json

#: metric name -> (field of an evaluation record in metrics.json, lower is better): what every
#: run records (train/evaluate.py) and what ``metrics:`` may show (report); here, in a module
#: without torch, so that reading results never imports it
METRICS: dict[str, tuple[str, bool]] = {
    "error": ("test_error", True),
    "top5_error": ("test_top5_error", True),
    "balanced_error": ("test_balanced_error", True),
    "macro_f1": ("test_macro_f1", False),
    "gmean_recall": ("test_gmean_recall", False),
    # long-tailed runs only (train.evaluate.group_fields); absent (NaN in the report) elsewhere
    "head_accuracy": ("test_head_accuracy", False),
    "medium_accuracy": ("test_medium_accuracy", False),
    "tail_accuracy": ("test_tail_accuracy", False),
}

SCHEMA_FILE = "metrics.schema.json"


class MetricsFormatError(SemiBenchError, ValueError):
    """A ``metrics.json`` file cannot be read or breaks the schema; the message names the file
    and the field."""


def _is_number(_checker: Any, value: Any) -> bool:
    """JSON numbers only: no booleans, and no NaN or infinity (which pass every range check)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_number, "integer": _is_integer}),
)


@functools.cache
def schema() -> dict[str, Any]:
    """The schema shipped with the package."""
    text = resources.files("semibench").joinpath("data", SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> Any:
    return _Validator(schema())


def _field(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: jsonschema.ValidationError) -> str:
    where = _field(error.absolute_path)
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        name = f"{where}.{missing[0]}" if where else missing[0]
        return f"missing field {name!r}"
    if not where:
        return f"top level: {error.message}"
    value = error.instance
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if error.validator == "type" or (error.validator == "oneOf"
                                      and not isinstance(value, int | float)):
        expected = error.validator_value if error.validator == "type" else "number or null"
        if expected == "number" and isinstance(value, float):
            expected = "finite number"
        return f"field {where!r} must be of type {expected}, got {shown}"
    if error.validator == "oneOf":  # a number outside [0, 100] where null is also allowed
        return f"field {where!r}={shown}: must be a percentage in [0, 100] or null"
    return f"field {where!r}={shown}: {error.message}"


#: the evaluation arrays with one entry per class: checked element by element here (a
#: percentage or null, as the schema says), a hundred times faster than the schema's
#: ``oneOf`` per element, which decides the message only when an element is wrong
PER_CLASS_FIELDS: tuple[str, ...] = ("test_per_class_accuracy",)


def _percent_or_null(value: Any) -> bool:
    return value is None or (_is_number(None, value) and 0 <= value <= 100)


def _without_per_class(data: Any) -> Any:
    """``data`` with its per-class arrays emptied when every element is a percentage or
    null (they then satisfy the schema's ``items``, the only keyword that reads their
    elements), else ``data`` itself."""
    if not isinstance(data, dict):
        return data
    light = dict(data)
    for key in ("best", "last"):
        record = data.get(key)
        if not isinstance(record, dict):
            continue
        for name in PER_CLASS_FIELDS:
            values = record.get(name)
            if isinstance(values, list) and values:
                if not all(_percent_or_null(v) for v in values):
                    return data
                light[key] = {**light[key], name: []}
    return light


def problem(data: Any) -> str | None:
    """Why ``data`` is not a valid metrics record (the first fault, one line), or None."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(_without_per_class(data)))
    return None if error is None else _describe(error)


def check_metrics(data: Any, source: str | Path) -> None:
    """Raise :class:`MetricsFormatError` naming ``source`` if ``data`` breaks the schema."""
    why = problem(data)
    if why is not None:
        raise MetricsFormatError(f"{source}: malformed metrics file: {why}")


def json_safe(value: Any) -> Any:
    """NaN (e.g. the accuracy of a class without test samples) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def input_format(domain: str, test_x: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """What one stored sample of a task looks like (``input_format`` in metrics.json), so that
    ``semibench predict`` can turn raw files into it without the prepared data."""
    if domain == "image":
        return {"shape": [int(n) for n in test_x.shape[1:]]}
    if domain == "audio":
        return {"sample_rate": int(meta["sample_rate"]), "num_samples": int(test_x.shape[-1])}
    return {}


def run_composition(data: dict[str, Any]) -> tuple[str, str | None]:
    """A run's (algorithm, imbalance method) as its metrics.json records them: the resolved
    settings' separate fields. A file written before they were fields (no ``imbalance``) reads
    as its label's algorithm with no imbalance method: nothing here parses a label."""
    config = data.get("config") or {}
    if "imbalance" in config or "imbalance" in data:
        return str(config.get("algorithm", data["algorithm"])), (
            config.get("imbalance", data.get("imbalance")) or None)
    return str(data["algorithm"]), None


def write_metrics(path: str | Path, data: dict[str, Any]) -> dict[str, Any]:
    """Validate, then write ``data`` atomically; return what was written. A trainer bug that
    would write a record the report cannot read fails here, before the run looks complete."""
    plain = json_safe(data)
    check_metrics(plain, path)
    atomic_write_json(path, plain)
    return plain


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The validated record in ``path``."""
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, JSONDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise MetricsFormatError(f"{path}: cannot read metrics file: {reason}") from None
    if isinstance(data, dict):  # older trainers wrote NaN for a class without test samples
        for key in ("best", "last"):
            record = data.get(key)
            if isinstance(record, dict) and isinstance(record.get("test_per_class_accuracy"),
                                                       list):
                record["test_per_class_accuracy"] = json_safe(record["test_per_class_accuracy"])
    check_metrics(data, path)
    return data
