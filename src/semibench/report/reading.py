"""Reading the runs' files (``metrics.json``, ``curve.csv``, Snakemake benchmark files) into
frames.

The inputs are exactly the files a caller names (the files of the runs the workflow declared):
nothing is globbed and no path is derived from another file's contents."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
               last: Mapping[str, Any]) -> list[dict[str, Any]]:
    best_acc = best.get("test_per_class_accuracy")
    if not isinstance(best_acc, list):
        return []
    last_acc = last.get("test_per_class_accuracy")
    if not isinstance(last_acc, list) or len(last_acc) != len(best_acc):
        last_acc = [math.nan] * len(best_acc)
    names = data.get("classes")
    if not isinstance(names, list) or len(names) != len(best_acc):
        names = [str(i) for i in range(len(best_acc))]
    return [
        dict(zip(KEY_COLUMNS, key, strict=True), class_index=i, class_name=str(name),
             best_accuracy=float(b) if b is not None else math.nan,
             last_accuracy=float(la) if la is not None else math.nan)
        for i, (name, b, la) in enumerate(zip(names, best_acc, last_acc, strict=True))
    ]


def _metric(record: Mapping[str, Any], field: str) -> float:
    """A recorded metric, NaN where the run predates it or it does not apply (top-5 error
    with five classes or fewer)."""
    value = record.get(field)
    return float(value) if value is not None else math.nan


def _read_run(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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
        frame = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read Snakemake benchmark file: {err}") from err
    if frame.empty or "s" not in frame.columns:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
    row = frame.iloc[-1]

    def number(column: str) -> float:
        value = pd.to_numeric(row.get(column, math.nan), errors="coerce")
        return float(value) if pd.notna(value) else math.nan

    return {"job_wall_s": number("s"), "job_cpu_s": number("cpu_time"),
            "job_max_rss_mb": number("max_rss")}


def read_curve(path: str | Path) -> pd.DataFrame:
    """The evaluated rows of one ``curve.csv``, numeric, sorted by iteration."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read curve file: {err}") from err
    missing = {"iteration", "val_error"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: curve file lacks column(s) {', '.join(sorted(missing))}")
    out = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns
                        else np.nan for c in CURVE_COLUMNS})
    out = out.dropna(subset=["iteration", "val_error"])
    return out.sort_values("iteration", kind="mergesort").reset_index(drop=True)


@dataclass(frozen=True)
class Results:
    """Everything read from the runs' files: one row per run, per evaluation, per class."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    per_class: pd.DataFrame


def _check_pairs(kind: str, paths: Sequence[Path], metrics: Sequence[Path]) -> None:
    if paths and len(paths) != len(metrics):
        raise ValueError(f"{len(paths)} {kind} file(s) for {len(metrics)} metrics files: "
                         f"give one per run, in the order of the metrics files")


def collect(
    metrics_paths: Sequence[str | Path],
    curve_paths: Sequence[str | Path] = (),
    benchmark_paths: Sequence[str | Path] = (),
) -> Results:
    """Read the named files of a set of runs.

    ``curve_paths`` and ``benchmark_paths`` (either may be empty) are given in the order of
    ``metrics_paths``, one per run; a curve must sit next to its metrics file. A run whose
    benchmark file is missing (a partial report, a run made outside Snakemake) gets NaN job
    costs. Raises :class:`MetricsFormatError` naming the file for unreadable or incomplete
    metrics and for two files claiming the same (task, num_labels, algorithm, seed).
    """
    metrics = [Path(p) for p in metrics_paths]
    curves = [Path(p) for p in curve_paths]
    benchmarks = [Path(p) for p in benchmark_paths]
    _check_pairs("curve", curves, metrics)
    _check_pairs("benchmark", benchmarks, metrics)
    rows: list[dict[str, Any]] = []
    per_class: list[dict[str, Any]] = []
    curve_frames: list[pd.DataFrame] = []
    seen: dict[tuple, str] = {}
    for i, path in enumerate(metrics):
        row, classes = _read_run(path)
        key = tuple(row[k] for k in KEY_COLUMNS)
        if key in seen:
            raise MetricsFormatError(f"{path}: duplicate run {key} (also in {seen[key]})")
        seen[key] = str(path)
        if benchmarks and benchmarks[i].exists():
            row.update(read_benchmark(benchmarks[i]))
        if curves:
            if curves[i].parent != path.parent:
                raise ValueError(f"{curves[i]}: curve file is not next to its metrics file "
                                 f"{path}")
            if curves[i].exists():
                curve = read_curve(curves[i])
                for k, v in zip(KEY_COLUMNS, key, strict=True):
                    curve.insert(KEY_COLUMNS.index(k), k, v)
                curve_frames.append(curve)
        rows.append(row)
        per_class += classes
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    if runs.empty:
        runs = runs.astype(
            {"num_labels": "int64", "seed": "int64", "best_iteration": "int64"}
            | {c: "float64" for c in RUN_COLUMNS if c.endswith(("_error", "_s", "_mb"))}
        )
    curve_frame = (pd.concat(curve_frames, ignore_index=True) if curve_frames
                   else pd.DataFrame(columns=[*KEY_COLUMNS, *CURVE_COLUMNS]))
    return Results(
        runs=sort_frame(runs, extra=["seed"]),
        curves=sort_frame(curve_frame, extra=["seed", "iteration"]) if curve_frames
        else curve_frame,
        per_class=sort_frame(pd.DataFrame(per_class, columns=list(PER_CLASS_COLUMNS)),
                              extra=["seed", "class_index"]),
    )


def collect_runs(
    metrics_paths: Sequence[str | Path], benchmark_paths: Sequence[str | Path] = ()
) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`), sorted in benchmark order."""
    return collect(metrics_paths, benchmark_paths=benchmark_paths).runs
