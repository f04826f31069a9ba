"""The config side of imbalanced runs, kept here so that ``semibench.config`` only calls it:
composed algorithm names, ``imbalance_params`` and the tasks' ``long_tailed`` sections. Every
error is one line naming the key (``ValueError``; the caller turns it into a ``ConfigError``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from semibench.algorithms.base import ALGORITHMS, make_params
from semibench.imbalance.base import (
    IMBALANCE,
    check_composition,
    make_composed_params,
    make_method_params,
    split_name,
)
from semibench.splits_lt import long_tailed_counts, long_tailed_setting


def check_algorithm_name(key: str, name: str) -> None:
    """A registered algorithm, or a composition that can run (Adsh only with FixMatch)."""
    if name in ALGORITHMS:
        return
    try:
        check_composition(name)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from None


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
                make_method_params(name, merged)
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


def run_fields(config: dict[str, Any], task_name: str, domain: str, num_labels: int,
               algorithm: str) -> tuple[Any, dict[str, Any]]:
    """A run's typed algorithm parameters (composed ones for ``<base>_<method>``) and its
    long-tailed split settings (empty for a balanced task)."""
    settings = config["tasks"][task_name]
    parts = split_name(algorithm)
    base = parts[0] if parts else algorithm
    values = {**config["algorithm_params"].get(base, {}),
              **settings.get("algorithm_params", {}).get(base, {})}
    if parts is None:
        params = make_params(algorithm, values, domain)
    else:
        method = {**config.get("imbalance_params", {}).get(parts[1], {}),
                  **settings.get("imbalance_params", {}).get(parts[1], {})}
        params = make_composed_params(algorithm, {"base": values, "imbalance": method}, domain)
    extra: dict[str, Any] = {}
    if "long_tailed" in settings:
        setting = long_tailed_setting(settings["long_tailed"], int(num_labels))
        extra = {"long_tailed": asdict(setting), "split_tag": setting.tag(int(num_labels))}
    return params, extra


def base_algorithm(name: str) -> str:
    """The registered algorithm a (possibly composed) name runs on."""
    parts = split_name(name)
    return parts[0] if parts else name


def algorithm_origins(name: str) -> list[str]:
    """Where a (possibly composed) algorithm's code comes from (a plugin reruns its jobs)."""
    parts = split_name(name)
    if parts is None:
        return [ALGORITHMS.origin(name)]
    return [ALGORITHMS.origin(parts[0]), IMBALANCE.origin(parts[1])]
