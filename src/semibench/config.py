"""Benchmark configuration: schema validation with one-line errors, checks against the
registries, and the resolved settings of every training run."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import logging
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import semibench.compose as compose
import semibench.sweep as sweep
from semibench.algorithms import ALGORITHMS, make_params
from semibench.backbones import BACKBONES
from semibench.backbones.base import required_weights
from semibench.errors import SemiBenchError
from semibench.imbalance import IMBALANCE
from semibench.plugins import PluginError, fingerprint, load_plugins, used_by
from semibench.splits_lt import long_tailed_counts, long_tailed_setting
from semibench.tasks import TASKS, Task, create_task
from semibench.tasks.from_files import FileTaskError, declare_file_tasks
from semibench.train.config import TrainConfig
from semibench.variants import base_task, check_variants
from semibench.weights import (
    HF_WEIGHT_FILES,
    WEIGHT_MODES,
    Weights,
    merge,
    missing_entries,
    missing_message,
)

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(SemiBenchError, ValueError):
    """An invalid configuration; the message is one line naming the key and what is allowed."""


def _is_integer(checker: Any, instance: Any) -> bool:
    """JSON Schema counts 60.0 as an integer; the pipeline does not (``range(60.0)`` fails and
    ``num_labels: [40.0]`` names a directory ``40.0`` that no rule makes)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

#: per domain, the callable of ``semibench.augment.build_views`` that takes the ``augment`` keys
VIEW_BUILDERS: dict[str, tuple[str, str]] = {
    "image": ("semibench.augment.image", "ImageViews"),
    "text": ("semibench.augment.text", "TextViews"),
    "audio": ("semibench.augment.audio", "build_audio_views"),
}


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
        if schema["type"] == "integer" and isinstance(value, float):
            return f"{where}={value!r}: must be an integer (written without a decimal point)"
        return f"{where}={value!r}: must be of type {schema['type']}"
    if error.validator == "pattern":
        what = f" ({' '.join(schema['description'].split())})" if "description" in schema else ""
        return f"{where}={value!r}: must match {schema['pattern']}{what}"
    if error.validator == "oneOf" and where.endswith("algorithms"):
        return f"{where}={value!r}: must be a list of algorithm names or \"all\""
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}={value!r}: {error.message}"


def _plain(value: Any, where: str = "") -> Any:
    """A JSON copy of a loaded YAML value. YAML-only types (dates, sets, ...) and non-finite
    numbers (``.nan`` passes every range check of the schema) are refused, naming the key."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where or '<config>'}={value!r}: must be a finite number")
    if value is None or isinstance(value, str | int | float):
        return value
    raise ConfigError(f"{where or '<config>'}={value!r}: must be a number, string, boolean, "
                      f"list or mapping, not a {type(value).__name__}")


def load_schema(path: str | Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def algorithm_names(config: dict[str, Any], task: str | None = None) -> list[str]:
    """The benchmark's algorithms, or a task's own list where it sets one."""
    algs = config["algorithms"]
    if task is not None:
        algs = config["tasks"][task].get("algorithms", algs)
    return ALGORITHMS.names() if algs == "all" else list(algs)


def _check_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(_Validator(schema).iter_errors(config))
    if error is not None:
        raise ConfigError(_one_line(error))


def check_config(config: dict[str, Any], schema: dict[str, Any] | None = None, *,
                 base_dir: str | Path | None = None, weights: str = "warn") -> dict[str, Any]:
    """Validate ``config``; return a copy with defaults filled in. Raises ``ConfigError``.

    ``weights``: what missing pretrained weights do (:func:`check_weights`): ``error`` (the
    ``check-config`` command, a machine that will train), ``warn`` (one log line each: a plan,
    a look at a config elsewhere) or ``skip``.

    ``base_dir``: the folder that relative paths (``plugins:`` files, ``from_files`` folders and
    tables) are read from, the config file's (``semibench.config_file.check_config_file``);
    None, for a config built in Python: the working directory. The paths stay as written.

    A list of values in ``algorithm_params`` or ``train`` is a sweep axis (semibench.sweep):
    the config is checked with each value in place, and the lists are kept in the result."""
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights={weights!r}: allowed: {', '.join(WEIGHT_MODES)}")
    schema = schema or load_schema()
    config = _plain(config)
    try:
        found = sweep.axes(config)
        first, *others = sweep.copies(config)
    except sweep.SweepError as err:
        raise ConfigError(str(err)) from None
    for other in others:  # each other swept value against the schema and its algorithm
        _check_schema(other, schema)
    checked = _check_scalars(first, schema, base_dir)
    for other in others:
        _check_algorithm_params(other)
    for (where, name), values in found.items():
        sweep.section_at(checked, where)[name] = values
    check_train_settings(checked)  # every run, every point of a sweep
    check_report_pages(checked)
    check_weights(checked, weights)
    return checked


def check_report_pages(config: dict[str, Any]) -> None:
    """A one-page report (``report.pages: one``) of a grid above its limits is refused here,
    before any job (semibench.report.layout.split_pages)."""
    from semibench.report.layout import split_pages

    try:
        split_pages(len(run_grid(config)), len(config["tasks"]), config.get("report"))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_scalars(config: dict[str, Any], schema: dict[str, Any],
                   base_dir: str | Path | None) -> dict[str, Any]:
    """:func:`check_config` of a config without lists."""
    _check_schema(config, schema)
    for key, spec in schema["properties"].items():
        if "default" in spec:
            config.setdefault(key, json.loads(json.dumps(spec["default"])))
    try:  # plugins first: they add algorithms, tasks and backbones that the checks below see
        config["plugins"] = load_plugins(config.get("plugins", []), base_dir)
    except PluginError as err:
        raise ConfigError(str(err)) from None

    lists = [("algorithms", algorithm_names(config))] + [
        (f"tasks.{t}.algorithms", algorithm_names(config, t))
        for t, settings in config["tasks"].items() if "algorithms" in settings
    ]
    for key, names in lists:
        for name in names:
            try:  # a registered algorithm or <base>_<imbalance method> (semibench.compose)
                compose.parse_label(name)
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None
    per_task = [(f"tasks.{t}.algorithm_train", s.get("algorithm_train", {}))
                for t, s in config["tasks"].items()]
    for key, section in [("algorithm_train", config["algorithm_train"]), *per_task]:
        for name in section:
            if not compose.is_label(name):
                raise ConfigError(f"{key}.{name}: unknown algorithm; allowed: "
                                  f"{', '.join(ALGORITHMS.names())}")
    _check_algorithm_params(config)
    try:
        check_imbalance_params(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    try:  # variants: another setting of a registered (or this config's from_files) task
        check_variants(config["tasks"], [*TASKS.names(), *(
            t for t, s in config["tasks"].items() if "from_files" in s and t not in TASKS)])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:  # tasks read from the user's files join the registry, checked against the files
        declare_file_tasks(config["tasks"], base_dir)
    except FileTaskError as err:
        raise ConfigError(str(err)) from None
    for name, settings in config["tasks"].items():
        if base_task(config, name) not in TASKS:
            raise ConfigError(f"tasks.{name}: unknown task; allowed: {', '.join(TASKS.names())} "
                              f"(or another name with variant_of: <one of them>)")
        task = create_task(base_task(config, name))
        settings.setdefault("num_labels", list(task.label_budgets))
        pool = task.pool_size()
        for i, n in enumerate(settings["num_labels"]):
            key = f"tasks.{name}.num_labels[{i}]={n}"
            if "long_tailed" in settings:  # n is N1, the labelled head count
                try:
                    check_long_tailed(name, task.num_classes, task.fixed_labelled,
                                      settings["long_tailed"], n, i)
                except ValueError as err:
                    raise ConfigError(str(err)) from None
                continue
            if task.fixed_labelled:
                continue  # checked against the prepared data by the split step
            if n % task.num_classes:
                raise ConfigError(f"{key}: must be a multiple of the {task.num_classes} classes "
                                  f"of {name} (the same number of labels per class)")
            if pool is not None and n >= pool:
                raise ConfigError(f"{key}: must be smaller than the {pool} samples of the "
                                  f"labelled/unlabelled pool of {name}")
        _check_backbone(name, task, settings)
        _check_augment(name, task, settings)
    return config


def check_train_settings(config: dict[str, Any]) -> None:
    """The resolved ``train`` settings of every (task, algorithm) of the grid, as
    :func:`run_config` merges them: an ``eval_every`` that the config sets must not exceed
    ``iterations`` (the run would evaluate only at its end and select its model on that one
    point, which is not what the number asks for). A default ``eval_every`` above a short
    run's ``iterations`` is fine: the trainer always evaluates at the last iteration."""
    seen: set[tuple[Any, ...]] = set()
    for run in run_grid(config):
        key = tuple(v for i, v in enumerate(run) if i not in (1, 3))  # not labels or seed
        if key in seen:
            continue
        seen.add(key)
        task, algorithm = run[0], run[2]
        train = run_config(config, *run)["train"]
        if train["eval_every"] <= train["iterations"]:
            continue
        where = {k: _train_source(config, task, algorithm, k)
                 for k in ("eval_every", "iterations")}
        if where["eval_every"] is not None:
            raise ConfigError(
                f"{where['eval_every']}.eval_every={train['eval_every']} is larger than "
                + (f"{where['iterations']}.iterations" if where["iterations"]
                   else "the default iterations") + f"={train['iterations']} "
                f"(task {task}, {algorithm}): the run would evaluate only at its end; set "
                "eval_every <= iterations")


def _train_source(config: dict[str, Any], task: str, algorithm: str, key: str) -> str | None:
    """Which section of the config sets train ``key`` for (task, algorithm), most specific
    first, as :func:`run_config` merges them; None where a default does."""
    settings = config["tasks"][task]
    composition = compose.parse_label(sweep.unswept(algorithm))
    names = [composition.label] + ([composition.algorithm]
                                   if composition.algorithm != composition.label else [])
    sections = []
    for n in names:
        sections += [(f"tasks.{task}.algorithm_train.{n}",
                      settings.get("algorithm_train", {}).get(n, {})),
                     (f"algorithm_train.{n}", config["algorithm_train"].get(n, {}))]
    sections += [(f"tasks.{task}.train", settings.get("train", {})), ("train", config["train"])]
    for where, section in sections:
        if key in section:
            return where
    return None


def weights_needed(config: dict[str, Any]) -> list[tuple[Weights, list[str]]]:
    """Every set of pretrained files the config's runs read (each task's backbone with its
    resolved ``backbone_args``, and the back-translation models where they cannot download),
    once, with the tasks that read it. Declared by the backbones; nothing is built."""
    needed: list[tuple[Weights, str]] = []
    for name, settings in config["tasks"].items():
        task = create_task(base_task(config, name))
        backbone = settings.get("backbone", task.backbone)
        args = resolved_backbone_args(task, settings)
        needed += [(w, name) for w in required_weights(backbone, args)]
    needed += _translator_weights(config)
    return merge(needed)


def _translator_weights(config: dict[str, Any]) -> list[tuple[Weights, str]]:
    """The MarianMT models of back-translation, for the text tasks that use it, where the
    ``backtranslate`` job cannot download them: a ``weights_dir`` is named, or the hub is
    offline (``HF_HUB_OFFLINE``). With ``fallback: token-edit`` a missing model is no error."""
    from semibench.backtranslate import MODELS, Settings, is_offline

    section = config.get("backtranslation") or {}
    if not section.get("enabled", True) or section.get("fallback", "none") != "none":
        return []
    folder = section.get("weights_dir") or ""
    if not folder and not is_offline():
        return []
    tasks = [t for t in config["tasks"] if create_task(base_task(config, t)).backtranslation]
    out = []
    for lang in Settings().languages:
        for model in MODELS[lang]:
            fix = (f"download it with `hf download {model}" + (
                f" --local-dir {Path(folder) / model}`" if folder else "` (the hub is offline "
                "here: HF_HUB_OFFLINE)") + ", or set backtranslation.fallback: token-edit")
            weights = Weights(f"back-translation {model}", (("config.json",), HF_WEIGHT_FILES),
                              directory=str(Path(folder) / model) if folder else None,
                              repos=() if folder else (model,), fix=fix)
            out += [(weights, t) for t in tasks]
    return out


def check_weights(config: dict[str, Any], mode: str = "error"
                  ) -> list[tuple[Weights, list[str]]]:
    """Look for every pretrained file of :func:`weights_needed` (a few ``stat`` calls; no
    model is built, nothing downloads) and return the missing ones with their tasks. ``error``
    raises one ``ConfigError`` listing them all and where each goes; ``warn`` logs one line
    each; ``skip`` does not look."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"weights={mode!r}: allowed: {', '.join(WEIGHT_MODES)}")
    if mode == "skip":
        return []
    missing = missing_entries(weights_needed(config))
    if missing and mode == "error":
        raise ConfigError(f"{missing_message(missing)} (on a machine that will not train: "
                          "`semibench check-config --weights warn`)")
    for weights, tasks in missing:
        logger.warning(f"warning: missing pretrained weights: {weights.describe(tasks)} (train "
                       "jobs of these tasks would fail on it)")
    return missing


def _check_algorithm_params(config: dict[str, Any]) -> None:
    """``algorithm_params`` (top level and per task): known algorithms, known, valid values."""
    top = config.get("algorithm_params", {})
    sections = [("algorithm_params", top)] + [
        (f"tasks.{t}.algorithm_params", settings["algorithm_params"])
        for t, settings in config["tasks"].items() if "algorithm_params" in settings
    ]
    for key, section in sections:
        for name, values in section.items():
            if name not in ALGORITHMS:
                raise ConfigError(f"{key}.{name}: unknown algorithm; allowed: "
                                  f"{', '.join(ALGORITHMS.names())}")
            merged = {**top.get(name, {}), **values}
            try:
                make_params(name, merged)
            except (ValueError, TypeError) as err:  # ConfigError is a ValueError
                raise ConfigError(str(err).replace("algorithm_params.", f"{key}.", 1)) from None


def check_imbalance_params(config: dict[str, Any]) -> None:
    """``imbalance_params`` (top level and per task): known methods, known, valid values."""
    sections = [("imbalance_params", config.get("imbalance_params", {}))] + [
        (f"tasks.{t}.imbalance_params", s["imbalance_params"])
        for t, s in config["tasks"].items() if "imbalance_params" in s]
    for key, section in sections:
        for name, values in section.items():
            if name not in IMBALANCE:
                raise ValueError(f"{key}.{name}: unknown imbalance method; allowed: "
                                 f"{', '.join(IMBALANCE.names())}")
            merged = {**config.get("imbalance_params", {}).get(name, {}), **values}
            try:
                compose.make_method_params(name, merged)
            except (ValueError, TypeError) as err:
                raise ValueError(str(err).replace("imbalance_params.", f"{key}.", 1)) from None


def check_long_tailed(task_name: str, num_classes: int, fixed_labelled: bool,
                      section: dict[str, Any], num_labels: int, index: int) -> None:
    """A task's ``long_tailed`` section for one N1 (``num_labels[index]``)."""
    where = f"tasks.{task_name}.long_tailed"
    if fixed_labelled:
        raise ValueError(f"{where}: {task_name} has a fixed labelled set; a long-tailed split "
                         "needs a pool to draw from")
    setting = long_tailed_setting(section, num_labels, where)
    tail = long_tailed_counts(num_labels, num_classes, setting.lb_gamma)[-1]
    if tail < 1:
        raise ValueError(f"tasks.{task_name}.num_labels[{index}]={num_labels}: N1 / gamma_l = "
                         f"{num_labels / setting.lb_gamma:g} leaves the tail class no label")


def _keywords(fn: Callable[..., Any], *, required: bool = True) -> tuple[set[str], bool]:
    """The names ``fn`` takes by keyword (without the positional ones that have no default when
    ``required`` is False), and whether it also takes ``**kwargs``."""
    names, var = set(), False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var = True
        elif p.kind is inspect.Parameter.KEYWORD_ONLY or (
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            and (required or p.default is not p.empty)
        ):
            names.add(p.name)
    return names, var


@functools.cache
def backbone_arguments(name: str) -> frozenset[str] | None:
    """The keyword arguments that backbone ``name`` takes; None when it takes any.

    A factory that passes ``**kwargs`` on to the class it returns (its return annotation)
    takes that class's keyword parameters too, except the required positional ones, which the
    factory fills itself (e.g. the encoder of a text backbone)."""
    factory: Callable[..., Any] = BACKBONES.get(name)
    names, var = _keywords(factory)
    if var:
        try:
            target = typing.get_type_hints(factory).get("return")
        except (AttributeError, NameError, TypeError):
            return None
        if not isinstance(target, type):
            return None
        inner, var = _keywords(target, required=False)
        if var:
            return None
        names |= inner
    return frozenset(names - {"num_classes"})


def resolved_backbone_args(task: Task, settings: dict[str, Any]) -> dict[str, Any]:
    """The task's default backbone_args, then the config's. With another backbone than the
    task's, the defaults it does not take are dropped (a config cannot remove them)."""
    name = settings.get("backbone", task.backbone)
    defaults = dict(task.backbone_args)
    allowed = backbone_arguments(name) if name != task.backbone else None
    if allowed is not None:
        defaults = {k: v for k, v in defaults.items() if k in allowed}
    return {**defaults, **settings.get("backbone_args", {})}


def _check_backbone(task_name: str, task: Task, settings: dict[str, Any]) -> None:
    key = f"tasks.{task_name}"
    name = settings.get("backbone", task.backbone)
    if name not in BACKBONES:
        families = [f"{p}/<name>" for p in BACKBONES.families()]
        raise ConfigError(f"{key}.backbone={name!r}: unknown backbone; allowed: "
                          f"{', '.join(BACKBONES.names() + families)}")
    factory = BACKBONES.get(name)
    check_name = getattr(getattr(factory, "func", None), "check_name", None)
    if check_name is not None:  # a family member (timm/..., hf/...): is it there?
        try:
            check_name(factory.args[0])
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(f"{key}.backbone={name!r}: {err}") from None
    allowed = backbone_arguments(name)
    if allowed is None:
        return  # it takes any keyword
    unknown = sorted(set(resolved_backbone_args(task, settings)) - allowed)
    if unknown:
        raise ConfigError(f"{key}.backbone_args: unknown key(s) {', '.join(unknown)} for "
                          f"backbone {name}; allowed: {', '.join(sorted(allowed))}")


def view_arguments(domain: str) -> frozenset[str]:
    """The ``augment`` keys that the views of ``domain`` take."""
    module, attr = VIEW_BUILDERS[domain]
    return frozenset(_keywords(getattr(importlib.import_module(module), attr))[0])


def _check_augment(task_name: str, task: Task, settings: dict[str, Any]) -> None:
    """Keys, then values: the views are built once, as the trainer builds them."""
    if "augment" not in settings:
        return  # the task's own views (tested with the task)
    from semibench.augment import build_views

    key = f"tasks.{task_name}.augment"
    spec = {**task.augment, **settings["augment"]}
    allowed = view_arguments(task.domain)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)} for {task.domain} views; "
                          f"allowed: {', '.join(sorted(allowed))}")
    try:
        build_views(task.domain, spec)
    except ValueError as err:  # the views' own checks name the key
        raise ConfigError(f"{key}: {' '.join(str(err).split())}") from None
    except (TypeError, RuntimeError) as err:  # e.g. a string where numbers are needed
        raise ConfigError(f"{key}: a value has the wrong type ({' '.join(str(err).split())})"
                          ) from None


def _resolved_values(config: dict[str, Any], task_name: str, task: Task,
                     composition: compose.Composition) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's trainer settings and base-algorithm parameters, by precedence (lists, the
    sweep axes, still in them)."""
    settings = config["tasks"][task_name]
    base, label = composition.algorithm, composition.label
    needs = ALGORITHMS.get(base).train_defaults
    train = {**task.train, **needs.get("all", {}), **needs.get(task.domain, {}),
             **config["train"], **settings.get("train", {}),
             **config["algorithm_train"].get(base, {}),
             **settings.get("algorithm_train", {}).get(base, {}),
             **(config["algorithm_train"].get(label, {}) if base != label else {}),
             **(settings.get("algorithm_train", {}).get(label, {}) if base != label else {})}
    values = {**config["algorithm_params"].get(base, {}),
              **settings.get("algorithm_params", {}).get(base, {})}
    return train, values


def run_config(config: dict[str, Any], task_name: str, num_labels: int, algorithm: str,
               seed: int) -> dict[str, Any]:
    """Everything one training run depends on (and nothing else, so that changing one
    algorithm's hyper-parameter changes only that algorithm's runs). A variant's run names its
    registered task (``base_task``), whose data and defaults it uses. ``algorithm`` is the
    config's name of it, USB's shorthand ``<base>_<method>`` for a composition: parsed here,
    once, into the separate fields ``algorithm`` and ``imbalance``; in a sweep, the run label
    of one point (``fixmatch,p_cutoff=0.9``: :func:`run_grid`), whose values it resolves."""
    base_name = base_task(config, task_name)
    task = create_task(base_name)
    settings = config["tasks"][task_name]
    composition = compose.parse_label(sweep.unswept(algorithm))
    base = composition.algorithm  # fixmatch_abc trains as fixmatch does
    label = composition.label
    train, values = _resolved_values(config, task_name, task, composition)
    point = next((p for p in sweep.points(train, values)
                  if sweep.point_label(label, p) == algorithm), None)
    if point is None:
        raise ConfigError(f"{algorithm}: not a run of tasks.{task_name}; its runs: " + ", ".join(
            sweep.point_label(label, p) for p in sweep.points(train, values)))
    train, values = sweep.apply(point, train, values)
    method_values = None
    if composition.imbalance is not None:
        method_values = {**config.get("imbalance_params", {}).get(composition.imbalance, {}),
                         **settings.get("imbalance_params", {}).get(composition.imbalance, {})}
    params, method_params = compose.make_params(composition, values, method_values, task.domain)
    generations, key = compose.generations(composition, method_params)
    iterations = int(train.get("iterations", TrainConfig.iterations))
    if iterations % generations:
        raise ConfigError(
            f"tasks.{task_name}: {label} trains {generations} generations of "
            f"train.iterations / {key} steps; train.iterations={iterations} is not a "
            f"multiple of {generations} (algorithm_train.{label}.iterations sets it)")
    run = {
        "task": task_name,
        "num_labels": int(num_labels),
        "algorithm": base,
        "seed": int(seed),
        "backbone": settings.get("backbone", task.backbone),
        "backbone_args": resolved_backbone_args(task, settings),
        "augment": {**task.augment, **settings.get("augment", {})},
        "train": TrainConfig.from_dict(train).to_settings(),  # optional keys where set
        "algorithm_params": dataclasses.asdict(params),
    }
    if composition.imbalance is not None:  # only a composition's: other runs' stay as they were
        run["imbalance"] = composition.imbalance
        run["imbalance_params"] = dataclasses.asdict(method_params)
    if "long_tailed" in settings:  # a long-tailed split's setting and tag
        setting = long_tailed_setting(settings["long_tailed"], int(num_labels))
        run.update(long_tailed=dataclasses.asdict(setting), split_tag=setting.tag(int(num_labels)))
    if base_name != task_name:  # only a variant's: the settings of other runs stay as they were
        run["base_task"] = base_name
    if point:  # only a swept run's: the settings of other runs stay as they were
        run["sweep"] = point
    used = used_by([*compose.algorithm_origins(composition), TASKS.origin(base_name),
                    BACKBONES.origin(run["backbone"])])
    if used:  # the run's plugins load in its job; an edited plugin file reruns its jobs
        run["plugins"] = fingerprint(used)
    return json.loads(json.dumps(run))  # plain JSON types, as it is stored and compared


def run_grid(config: dict[str, Any]) -> list[tuple[str, int, str, int]]:
    """Every (task, num_labels, run label, seed) of the benchmark: one label per algorithm, or
    per point of its sweep (``fixmatch,p_cutoff=0.9``, semibench.sweep)."""
    labels = {}
    for task_name in config["tasks"]:
        task = create_task(base_task(config, task_name))
        labels[task_name] = [
            sweep.point_label(alg, point) for alg in algorithm_names(config, task_name)
            for point in sweep.points(*_resolved_values(config, task_name, task,
                                                        compose.parse_label(alg)))]
    return [
        (task, n, label, seed)
        for task, settings in config["tasks"].items()
        for n in settings["num_labels"]
        for label in labels[task]
        for seed in config["seeds"]
    ]
