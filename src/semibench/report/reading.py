"""Reading the runs' files (``metrics.json``, ``curve.csv``, Snakemake benchmark files) into
frames.

The inputs are exactly the files a caller names (the files of the runs the workflow declared):
nothing is globbed and no path is derived from another file's contents."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semibench.metrics_file import MetricsFormatError, read_metrics, run_composition
from semibench.report.frames import (
    CURVE_COLUMNS,
    EXTRA_METRIC_COLUMNS,
    KEY_COLUMNS,
    PER_CLASS_COLUMNS,
    RUN_COLUMNS,
    sort_frame,
)
from semibench.report.sensitivity import sweep_cell


def precision(device: str, config: Any, recorded: str | None = None) -> str:
    """The arithmetic a run trained in: what metrics.json records (``precision``, the
    trainer's own answer), else inferred from ``train.amp`` for older files (bf16 or fp16
    autocast on a GPU, fp32 on the CPU); "not recorded" for a GPU run without either."""
    if recorded is not None:
        return "fp32" if recorded == "fp32" else f"{recorded} autocast"
    train = config.get("train") if isinstance(config, Mapping) else None
    amp = train.get("amp") if isinstance(train, Mapping) else None
    if device == "cpu":
        return "fp32"
    if amp is None:
        return "not recorded"
    return f"{amp} autocast" if amp in ("bf16", "fp16") else "fp32"


def _per_class(key: tuple, data: Mapping[str, Any], best: Mapping[str, Any],
               last: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The run's rows of ``per_class.csv``, as columns (:data:`PER_CLASS_COLUMNS`)."""
    best_acc = best.get("test_per_class_accuracy")
    if not isinstance(best_acc, list):
        return {}
    n = len(best_acc)
    last_acc = last.get("test_per_class_accuracy")
    if not isinstance(last_acc, list) or len(last_acc) != n:
        last_acc = [math.nan] * n
    names = data.get("classes")
    if not isinstance(names, list) or len(names) != n:
        names = [str(i) for i in range(n)]
    return {
        **{k: [v] * n for k, v in zip(KEY_COLUMNS, key, strict=True)},
        "class_index": list(range(n)),
        "class_name": [str(name) for name in names],
        "best_accuracy": [float(b) if b is not None else math.nan for b in best_acc],
        "last_accuracy": [float(v) if v is not None else math.nan for v in last_acc],
    }


def _metric(record: Mapping[str, Any], field: str) -> float:
    """A recorded metric, NaN where the run predates it or it does not apply (top-5 error
    with five classes or fewer)."""
    value = record.get(field)
    return float(value) if value is not None else math.nan


def _read_run(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """One row of :func:`collect_runs` and its per-class rows. The file is checked against
    the metrics.json schema first (:mod:`semibench.metrics_file`); a fault names the file and
    the field."""
    data = read_metrics(path)
    best, last = data["best"], data["last"]
    composition = run_composition(data)
    threads = data.get("threads")
    row = {
        "task": data["task"],
        "domain": data["domain"],
        "num_labels": data["num_labels"],
        "algorithm": data["algorithm"],
        "seed": data["seed"],
        "best_test_error": float(best["test_error"]),
        "last_test_error": float(last["test_error"]),
        "best_val_error": float(best["val_error"]),
        "best_iteration": best["iteration"],
        "val_size": data["val_size"] if data.get("val_size") is not None else math.nan,
        **{column: _metric(best if column.startswith("best_") else last,
                           column.split("_", 1)[1]) for column in EXTRA_METRIC_COLUMNS},
        "wall_time_s": float(data["wall_time_s"]),
        "device": data["device"],
        "threads": threads if threads is not None else math.nan,
        "precision": precision(data["device"], data.get("config"), data.get("precision")),
        # text runs: back-translation (USB) or the token-edit stand-in; "" elsewhere
        "text_strong_view": str(data.get("text_strong_view") or ""),
        "job_wall_s": math.nan,
        "job_cpu_s": math.nan,
        "job_max_rss_mb": math.nan,
        "base_algorithm": composition[0],
        "imbalance": composition[1] or "",  # "" for none, as text_strong_view
        "sweep": sweep_cell((data.get("config") or {}).get("sweep")),
        "metrics_path": str(path),
    }
    key = tuple(row[k] for k in KEY_COLUMNS)
    return row, _per_class(key, data, best, last)


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Wall time, CPU time and peak resident memory of one job from Snakemake's benchmark
    file (a TSV with columns ``s``, ``cpu_time``, ``max_rss`` in MB; the last line is the
    last attempt). Unmeasured values ("NA", "-") are NaN."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = [row for row in csv.reader(handle, delimiter="\t") if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read Snakemake benchmark file: {err}") from err
    if len(lines) < 2 or "s" not in lines[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
    header, last = lines[0], lines[-1]

    def number(column: str) -> float:
        if column not in header or header.index(column) >= len(last):
            return math.nan
        text = last[header.index(column)].strip()
        return math.nan if text in _NA else _float(text)

    return {"job_wall_s": number("s"), "job_cpu_s": number("cpu_time"),
            "job_max_rss_mb": number("max_rss")}


#: what pandas reads as a missing value in the files the report reads
_NA = frozenset({"", "NA", "-", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>",
                 "#N/A", "-NaN", "-nan"})
_INTEGER = re.compile(r"[-+]?\d+")


def _float(text: str) -> float:
    """A cell as a number, NaN where it is none (as ``pd.to_numeric(errors="coerce")``)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _numbers(cells: Sequence[str]) -> list[float]:
    """Cells as numbers, NaN where there is none; the common cases at C speed."""
    try:
        return list(map(float, cells))
    except ValueError:
        pass
    try:
        return [float(c) if c else math.nan for c in cells]
    except ValueError:
        return [math.nan if c.strip() in _NA else _float(c) for c in cells]


@dataclass
class _Curve:
    """One ``curve.csv``: its columns (:data:`CURVE_COLUMNS`, as floats) over the evaluated
    rows, by iteration, and which columns hold integers only (pandas reads those as integers,
    so a table keeps writing ``300``, not ``300.0``)."""

    columns: dict[str, list[float]]
    integer: dict[str, bool]

    def __len__(self) -> int:
        return len(self.columns["iteration"])


def _read_curve(path: Path) -> _Curve:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read curve file: {err}") from err
    if not lines:
        raise ValueError(f"{path}: cannot read curve file: No columns to parse from file")
    header = [h.strip() for h in lines[0]]
    missing = {"iteration", "val_error"} - set(header)
    if missing:
        raise ValueError(f"{path}: curve file lacks column(s) {', '.join(sorted(missing))}")
    body = lines[1:]
    for number, row in enumerate(body, start=2):
        if len(row) > len(header):
            raise ValueError(f"{path}: cannot read curve file: line {number} has {len(row)} "
                             f"fields, the header {len(header)}")
    position = {name: i for i, name in enumerate(header)}
    width = len(header)
    # the cells column by column (a short row: empty cells, as pandas reads it)
    text = list(zip(*(row if len(row) == width else row + [""] * (width - len(row))
                      for row in body), strict=True)) or [()] * width
    columns: dict[str, list[float]] = {}
    integer: dict[str, bool] = {}
    for name in CURVE_COLUMNS:
        i = position.get(name)
        if i is None:
            columns[name], integer[name] = [math.nan] * len(body), False
            continue
        cells = text[i]
        columns[name] = _numbers(cells)
        integer[name] = all(_INTEGER.fullmatch(c.strip()) for c in cells)
    keep = [j for j, (it, val) in enumerate(zip(columns["iteration"], columns["val_error"],
                                                 strict=True))
            if not (math.isnan(it) or math.isnan(val))]
    keep.sort(key=lambda j: columns["iteration"][j])  # stable, as a mergesort
    return _Curve({name: [values[j] for j in keep] for name, values in columns.items()},
                  integer)


def _curve_frame(columns: Mapping[str, list[float]], integer: Mapping[str, bool]
                 ) -> pd.DataFrame:
    return pd.DataFrame({name: np.asarray(values, dtype=float).astype(np.int64)
                         if integer.get(name) and values else np.asarray(values, dtype=float)
                         for name, values in columns.items()})


def read_curve(path: str | Path) -> pd.DataFrame:
    """The evaluated rows of one ``curve.csv``, numeric, sorted by iteration."""
    curve = _read_curve(Path(path))
    return _curve_frame(curve.columns, curve.integer)


@dataclass(frozen=True)
class Results:
    """Everything read from the runs' files: one row per run, per evaluation, per class;
    ``problems``: the runs left out (with ``on_error``), one line each naming the file and
    the run."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    per_class: pd.DataFrame
    problems: tuple[str, ...] = ()


def _check_pairs(kind: str, paths: Sequence[Path], metrics: Sequence[Path]) -> None:
    if paths and len(paths) != len(metrics):
        raise ValueError(f"{len(paths)} {kind} file(s) for {len(metrics)} metrics files: "
                         f"give one per run, in the order of the metrics files")


def run_name(key: Sequence[Any]) -> str:
    """A run as its directory names it: ``task/num_labels/algorithm/seed<seed>``."""
    task, num_labels, algorithm, seed = key
    return f"{task}/{num_labels}/{algorithm}/seed{seed}"


class RunUnreadable(MetricsFormatError):
    """A run's file cannot be read; the message names the file and the run."""


def collect(
    metrics_paths: Sequence[str | Path],
    curve_paths: Sequence[str | Path] = (),
    benchmark_paths: Sequence[str | Path] = (),
    keys: Sequence[Sequence[Any]] = (),
    on_error: Callable[[str], None] | None = None,
) -> Results:
    """Read the named files of a set of runs.

    ``curve_paths`` and ``benchmark_paths`` (either may be empty) are given in the order of
    ``metrics_paths``, one per run; a curve must sit next to its metrics file and be there
    (the trainer writes it first). A run whose benchmark file is missing (a partial report,
    a run made outside Snakemake) gets NaN job costs. ``keys``: the configured (task, num_labels, algorithm, seed) of each run, if known,
    named with any fault of its files. Raises :class:`MetricsFormatError` naming the file (and
    the run) for unreadable or incomplete metrics, a curve or benchmark file that cannot be
    read, and two files claiming the same (task, num_labels, algorithm, seed); with
    ``on_error``, a run whose files cannot be read is left out and the message passed to it
    instead (also in ``Results.problems``).
    """
    metrics = [Path(p) for p in metrics_paths]
    curves = [Path(p) for p in curve_paths]
    benchmarks = [Path(p) for p in benchmark_paths]
    _check_pairs("curve", curves, metrics)
    _check_pairs("benchmark", benchmarks, metrics)
    if keys and len(keys) != len(metrics):
        raise ValueError(f"{len(keys)} run keys for {len(metrics)} metrics files")
    rows: list[dict[str, Any]] = []
    classes: dict[str, list[Any]] = {c: [] for c in PER_CLASS_COLUMNS}
    curve_columns: dict[str, list[Any]] = {c: [] for c in (*KEY_COLUMNS, *CURVE_COLUMNS)}
    integer = dict.fromkeys(CURVE_COLUMNS, True)
    seen: dict[tuple, str] = {}
    problems: list[str] = []
    for i, path in enumerate(metrics):
        try:
            if curves and curves[i].parent != path.parent:
                raise ValueError(f"{curves[i]}: curve file is not next to its metrics file "
                                 f"{path}")
            row, per_class = _read_run(path)
            key = tuple(row[k] for k in KEY_COLUMNS)
            if key in seen:
                raise MetricsFormatError(f"{path}: duplicate run {key} (also in {seen[key]})")
            if benchmarks and benchmarks[i].exists():
                row.update(read_benchmark(benchmarks[i]))
            if curves and not curves[i].is_file():  # written before metrics.json: lost
                raise ValueError(f"{curves[i]}: curve file missing (its metrics file "
                                 f"{path.name} is there)")
            curve = _read_curve(curves[i]) if curves else None
        except (MetricsFormatError, ValueError) as err:
            message = f"run {run_name(keys[i])}: {err}" if keys else str(err)
            if on_error is None:
                raise RunUnreadable(message) from None
            on_error(message)
            problems.append(message)
            continue
        seen[key] = str(path)
        rows.append(row)
        for column, values in per_class.items():
            classes[column] += values
        if curve is not None:
            for k, v in zip(KEY_COLUMNS, key, strict=True):
                curve_columns[k] += [v] * len(curve)
            for column in CURVE_COLUMNS:
                curve_columns[column] += curve.columns[column]
                integer[column] = integer[column] and curve.integer[column]
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    if runs.empty:
        runs = runs.astype(
            {"num_labels": "int64", "seed": "int64", "best_iteration": "int64"}
            | {c: "float64" for c in RUN_COLUMNS if c.endswith(("_error", "_s", "_mb"))}
        )
    if curve_columns["iteration"]:
        curve_frame = pd.concat([pd.DataFrame({k: curve_columns[k] for k in KEY_COLUMNS}),
                                 _curve_frame({c: curve_columns[c] for c in CURVE_COLUMNS},
                                              integer)], axis=1)
        curve_frame = sort_frame(curve_frame, extra=["seed", "iteration"])
    else:
        curve_frame = pd.DataFrame(columns=[*KEY_COLUMNS, *CURVE_COLUMNS])
    return Results(
        runs=sort_frame(runs, extra=["seed"]),
        curves=curve_frame,
        per_class=sort_frame(pd.DataFrame(classes, columns=list(PER_CLASS_COLUMNS)),
                             extra=["seed", "class_index"]),
        problems=tuple(problems),
    )


def collect_runs(
    metrics_paths: Sequence[str | Path], benchmark_paths: Sequence[str | Path] = ()
) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`), sorted in benchmark order."""
    return collect(metrics_paths, benchmark_paths=benchmark_paths).runs
