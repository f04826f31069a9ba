"""Benchmark configuration: schema validation with one-line errors, checks against the
registries, and the resolved settings of every training run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from semibench.algorithms import ALGORITHMS, make_params
from semibench.tasks import TASKS, create_task
from semibench.train.config import TrainConfig

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message is one line naming the key and what is allowed."""


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<config>"


def _one_line(error: jsonschema.ValidationError) -> str:
    where = _path(error.absolute_path)
    schema, value = error.schema, error.instance
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        return f"{where}: unknown key(s) {', '.join(map(str, extra))}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{where}={value!r}: allowed values: {', '.join(map(str, schema['enum']))}"
    if error.validator == "type":
        return f"{where}={value!r}: must be of type {schema['type']}"
    if error.validator == "oneOf" and where.endswith("algorithms"):
        return f"{where}={value!r}: must be a list of algorithm names or \"all\""
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}={value!r}: {error.message}"


def load_schema(path: str | Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _type_ok(value: Any, default: Any) -> bool:
    """YAML value vs the type of a Params default: bools are not numbers, ints are floats."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _check_types(name: str, values: dict[str, Any]) -> None:
    for field in dataclasses.fields(ALGORITHMS.get(name).Params):
        if field.name in values and not _type_ok(values[field.name], field.default):
            raise ConfigError(f"algorithm_params.{name}.{field.name}={values[field.name]!r}: "
                              f"must be of type {type(field.default).__name__}")


def algorithm_names(config: dict[str, Any], task: str | None = None) -> list[str]:
    """The benchmark's algorithms, or a task's own list where it sets one."""
    algs = config["algorithms"]
    if task is not None:
        algs = config["tasks"][task].get("algorithms", algs)
    return ALGORITHMS.names() if algs == "all" else list(algs)


def check_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config``; return a copy with defaults filled in. Raises ``ConfigError``."""
    schema = schema or load_schema()
    config = json.loads(json.dumps(config))  # plain copy, and YAML-only types are rejected
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise ConfigError(_one_line(error))
    for key, spec in schema["properties"].items():
        if "default" in spec:
            config.setdefault(key, json.loads(json.dumps(spec["default"])))

    lists = [("algorithms", algorithm_names(config))] + [
        (f"tasks.{t}.algorithms", algorithm_names(config, t))
        for t, settings in config["tasks"].items() if "algorithms" in settings
    ]
    for key, names in lists:
        for name in names:
            if name not in ALGORITHMS:
                raise ConfigError(f"{key}: unknown algorithm {name!r}; allowed: "
                                  f"{', '.join(ALGORITHMS.names())}")
    for name in config["algorithm_train"]:
        if name not in ALGORITHMS:
            raise ConfigError(f"algorithm_train.{name}: unknown algorithm; allowed: "
                              f"{', '.join(ALGORITHMS.names())}")
    sections = [("algorithm_params", config["algorithm_params"])] + [
        (f"tasks.{t}.algorithm_params", settings["algorithm_params"])
        for t, settings in config["tasks"].items() if "algorithm_params" in settings
    ]
    for key, section in sections:
        for name, values in section.items():
            if name not in ALGORITHMS:
                raise ConfigError(f"{key}.{name}: unknown algorithm; allowed: "
                                  f"{', '.join(ALGORITHMS.names())}")
            merged = {**config["algorithm_params"].get(name, {}), **values}
            try:
                _check_types(name, merged)
                make_params(name, merged)
            except ConfigError as err:
                raise ConfigError(str(err).replace("algorithm_params.", f"{key}.", 1)) from None
            except (ValueError, TypeError) as err:
                raise ConfigError(str(err).replace("algorithm_params.", f"{key}.", 1)) from None

    for name, settings in config["tasks"].items():
        if name not in TASKS:
            raise ConfigError(f"tasks.{name}: unknown task; allowed: {', '.join(TASKS.names())}")
        task = create_task(name)
        settings.setdefault("num_labels", list(task.label_budgets))
        pool = task.pool_size()
        for i, n in enumerate(settings["num_labels"]):
            key = f"tasks.{name}.num_labels[{i}]={n}"
            if task.fixed_labelled:
                continue  # checked against the prepared data by the split step
            if n % task.num_classes:
                raise ConfigError(f"{key}: must be a multiple of the {task.num_classes} classes "
                                  f"of {name} (the same number of labels per class)")
            if pool is not None and n >= pool:
                raise ConfigError(f"{key}: must be smaller than the {pool} samples of the "
                                  f"labelled/unlabelled pool of {name}")
    return config


def run_config(config: dict[str, Any], task_name: str, num_labels: int, algorithm: str,
               seed: int) -> dict[str, Any]:
    """Everything one training run depends on (and nothing else, so that changing one
    algorithm's hyper-parameter changes only that algorithm's runs)."""
    task = create_task(task_name)
    settings = config["tasks"][task_name]
    needs = ALGORITHMS.get(algorithm).train_defaults
    train = {**task.train, **needs.get("all", {}), **needs.get(task.domain, {}),
             **config["train"], **settings.get("train", {}),
             **config["algorithm_train"].get(algorithm, {})}
    values = {**config["algorithm_params"].get(algorithm, {}),
              **settings.get("algorithm_params", {}).get(algorithm, {})}
    params = make_params(algorithm, values, task.domain)
    run = {
        "task": task_name,
        "num_labels": int(num_labels),
        "algorithm": algorithm,
        "seed": int(seed),
        "backbone": settings.get("backbone", task.backbone),
        "backbone_args": {**task.backbone_args, **settings.get("backbone_args", {})},
        "augment": {**task.augment, **settings.get("augment", {})},
        "train": dataclasses.asdict(TrainConfig.from_dict(train)),
        "algorithm_params": dataclasses.asdict(params),
    }
    return json.loads(json.dumps(run))  # plain JSON types, as it is stored and compared


def run_grid(config: dict[str, Any]) -> list[tuple[str, int, str, int]]:
    """Every (task, num_labels, algorithm, seed) of the benchmark."""
    return [
        (task, n, alg, seed)
        for task, settings in config["tasks"].items()
        for n in settings["num_labels"]
        for alg in algorithm_names(config, task)
        for seed in config["seeds"]
    ]
