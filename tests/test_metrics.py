"""Metrics beyond the error, the metrics.json schema (checked when written and when read) and
the config's ``metrics:`` choice of what the report shows."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from semibench.config import ConfigError, check_config, load_schema
from semibench.metrics_file import (
    MetricsFormatError,
    check_metrics,
    read_metrics,
    schema,
    write_metrics,
)
from semibench.report import aggregate
from semibench.report.aggregate import collect, error_table, summarize
from semibench.report.tables import write_tables
from semibench.train.evaluate import METRICS, classification_metrics

# 6 classes, 8 samples. Rows: true class, then the model's classes by decreasing logit.
#   y  top-5          argmax right?   true class in top 5?
#   0  0 1 2 3 4      yes             yes
#   0  1 0 2 3 4      no              yes
#   1  1 0 2 3 4      yes             yes
#   1  2 3 4 5 0      no              no  (1 is ranked 6th)
#   2  2 0 1 3 4      yes             yes
#   3  0 1 2 4 5      no              no  (3 is ranked 6th)
#   3  3 0 1 2 4      yes             yes
#   5  5 0 1 2 3      yes             yes
Y = torch.tensor([0, 0, 1, 1, 2, 3, 3, 5])
TOPK = torch.tensor([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [1, 0, 2, 3, 4], [2, 3, 4, 5, 0],
                     [2, 0, 1, 3, 4], [0, 1, 2, 4, 5], [3, 0, 1, 2, 4], [5, 0, 1, 2, 3]])


def test_metrics_by_hand():
    result = classification_metrics(Y, TOPK, num_classes=6)
    # 5 of 8 right
    assert result.error == pytest.approx(100 * 3 / 8)
    # 2 of 8 have the true class outside the top 5
    assert result.top5_error == pytest.approx(100 * 2 / 8)
    # recall per present class: 0: 1/2, 1: 1/2, 2: 1, 3: 1/2, 5: 1 (class 4 has no samples)
    assert result.balanced_error == pytest.approx(100 * (1 - (0.5 + 0.5 + 1 + 0.5 + 1) / 5))
    # F1 = 2TP / (2TP + FP + FN): 0: TP1 FP1 FN1 -> 1/2; 1: TP1 FP1 FN1 -> 1/2;
    # 2: TP1 FP1 FN0 -> 2/3; 3: TP1 FP0 FN1 -> 2/3; 5: TP1 -> 1; class 4 occurs nowhere
    assert result.macro_f1 == pytest.approx(100 * (0.5 + 0.5 + 2 / 3 + 2 / 3 + 1) / 5)
    assert result.per_class_accuracy[:4] == [50.0, 50.0, 100.0, 50.0]
    assert math.isnan(result.per_class_accuracy[4]) and result.per_class_accuracy[5] == 100.0
    # and the same as scikit-learn's definitions
    pred = TOPK[:, 0].numpy()
    assert result.balanced_error == pytest.approx(
        100 * (1 - balanced_accuracy_score(Y.numpy(), pred)))
    assert result.macro_f1 == pytest.approx(
        100 * f1_score(Y.numpy(), pred, average="macro", zero_division=0))


def test_top5_not_defined_for_five_classes_or_fewer():
    y = torch.tensor([0, 1, 2, 3, 4])
    topk = torch.tensor([[1, 0, 2, 3, 4]] * 5)  # every class is always in the top 5
    result = classification_metrics(y, topk, num_classes=5)
    assert result.top5_error is None
    assert result.error == pytest.approx(80.0)


def test_imbalanced_predictions_show_in_balanced_error_and_macro_f1():
    # 9 of class 0, 1 of class 1, always predicting 0: 10 % error but 50 % balanced error
    y = torch.tensor([0] * 9 + [1])
    topk = torch.tensor([[0, 1]] * 10)
    result = classification_metrics(y, topk, num_classes=2)
    assert result.error == pytest.approx(10.0)
    assert result.balanced_error == pytest.approx(50.0)
    assert result.macro_f1 == pytest.approx(100 * (18 / 19 + 0) / 2)


# --------------------------------------------------------------------------- the schema


def record(**extra) -> dict:
    base = {
        "task": "mnist", "domain": "image", "num_labels": 40, "algorithm": "fixmatch",
        "seed": 0, "num_classes": 2, "classes": ["a", "b"],
        "best": {"iteration": 3, "val_error": 10.0, "test_error": 12.0,
                 "test_top5_error": None, "test_balanced_error": 13.0, "test_macro_f1": 85.0,
                 "test_per_class_accuracy": [90.0, 86.0]},
        "last": {"iteration": 6, "val_error": 11.0, "test_error": 14.0,
                 "test_top5_error": None, "test_balanced_error": 15.0, "test_macro_f1": 80.0,
                 "test_per_class_accuracy": [88.0, 84.0]},
        "wall_time_s": 1.5, "device": "cpu", "threads": 1,
        "config": {"train": {"amp": "none"}},
    }
    base.update(extra)
    return base


def test_missing_field_is_one_line_naming_file_and_field(tmp_path):
    path = tmp_path / "metrics.json"
    data = record()
    del data["best"]["val_error"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(MetricsFormatError) as err:
        read_metrics(path)
    message = str(err.value)
    assert "\n" not in message
    assert message == f"{path}: malformed metrics file: missing field 'best.val_error'"
    # the report reads through the same check
    with pytest.raises(MetricsFormatError, match=re.escape("missing field 'best.val_error'")):
        collect([path])


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(seed="0"), "field 'seed' must be of type integer, got '0'"),
    (lambda d: d["last"].update(test_error=float("nan")),
     "field 'last.test_error' must be of type finite number, got nan"),
    (lambda d: d["best"].update(test_macro_f1=130.0), "field 'best.test_macro_f1'=130.0"),
    (lambda d: d.update(num_labels=True), "field 'num_labels' must be of type integer"),
    (lambda d: d.pop("device"), "missing field 'device'"),
])
def test_wrong_values_are_refused(change, expected):
    data = record()
    change(data)
    with pytest.raises(MetricsFormatError, match=re.escape(f"x/metrics.json: malformed metrics "
                                                           f"file: {expected}")):
        check_metrics(data, "x/metrics.json")


def test_writer_validates_and_stores_nan_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    data = record()
    data["best"]["test_per_class_accuracy"] = [90.0, float("nan")]  # no test sample of "b"
    written = write_metrics(path, data)
    assert json.loads(path.read_text())["best"]["test_per_class_accuracy"] == [90.0, None]
    assert written == read_metrics(path)
    bad = record()
    del bad["last"]
    with pytest.raises(MetricsFormatError, match="missing field 'last'"):
        write_metrics(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()  # nothing that looks complete is left


def test_older_files_with_nan_per_class_accuracy_are_read(tmp_path):
    path = tmp_path / "metrics.json"
    data = record()
    data["best"]["test_per_class_accuracy"] = [90.0, float("nan")]
    path.write_text(json.dumps(data), encoding="utf-8")  # json writes NaN
    assert read_metrics(path)["best"]["test_per_class_accuracy"] == [90.0, None]


def test_schema_ships_with_the_package_and_names_every_metric():
    fields = set(schema()["$defs"]["evaluation"]["properties"])
    assert {field for field, _ in METRICS.values()} <= fields
    assert aggregate.METRICS == METRICS  # the report's copy (it must not import torch)


# --------------------------------------------------------------------------- config and report


def test_metrics_key_in_config(repo_root):
    base = {"algorithms": ["fixmatch"], "tasks": {"mnist": {}}}
    assert check_config(base)["metrics"] == ["error"]
    chosen = check_config({**base, "metrics": ["error", "macro_f1"]})["metrics"]
    assert chosen == ["error", "macro_f1"]
    with pytest.raises(ConfigError, match=r"^metrics\[1\]='f1': allowed values: error, "
                       "top5_error, balanced_error, macro_f1, gmean_recall, head_accuracy, "
                       "medium_accuracy, tail_accuracy$"):
        check_config({**base, "metrics": ["error", "f1"]})
    enum = load_schema()["properties"]["metrics"]["items"]["enum"]
    assert enum == list(METRICS)
    offline = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    assert check_config(offline)["metrics"] == ["error", "balanced_error"]


def _run_file(root: Path, algorithm: str, seed: int, f1: float, top5: float | None) -> Path:
    path = root / algorithm / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    data = record(algorithm=algorithm, seed=seed)
    data["best"].update(test_macro_f1=f1, test_top5_error=top5)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_report_shows_chosen_metrics(tmp_path):
    paths = [_run_file(tmp_path, "fixmatch", 0, 80.0, 3.0),
             _run_file(tmp_path, "fixmatch", 1, 90.0, 5.0),
             _run_file(tmp_path, "supervised", 0, 60.0, 9.0),
             _run_file(tmp_path, "supervised", 1, 70.0, None)]
    runs = collect(paths).runs
    assert sorted(runs["best_test_macro_f1"]) == [60.0, 70.0, 80.0, 90.0]
    assert runs["best_test_top5_error"].isna().sum() == 1
    summary = summarize(runs)
    cells, bold = error_table(summary, "mnist", "best", "macro_f1")
    assert cells.at["fixmatch", 40] == "85.00 ± 7.07"
    assert bold.at["fixmatch", 40] and not bold.at["supervised", 40]  # higher F1 is better
    # a seed without the metric makes the cell missing, not the mean of the others
    cells, _ = error_table(summary, "mnist", "best", "top5_error")
    assert cells.at["supervised", 40] == aggregate.MISSING_CELL
    assert cells.at["fixmatch", 40] == "4.00 ± 1.41"

    written = write_tables(runs, tmp_path / "tables", metrics=["error", "macro_f1"])
    markdown = written["summary.md"].read_text()
    assert "## Test macro-F1 (%) at the checkpoint with the lowest validation error" in markdown
    assert "**85.00 ± 7.07**" in markdown
    assert "Top-5" not in markdown  # not chosen
    plain = write_tables(runs, tmp_path / "plain")["summary.md"].read_text()
    assert "macro-F1" not in plain


def test_aggregate_command_takes_the_config_metrics(tmp_path):
    from semibench.cli import main

    paths = [_run_file(tmp_path, "fixmatch", 0, 80.0, 3.0),
             _run_file(tmp_path, "supervised", 0, 60.0, 9.0)]
    out = tmp_path / "tables"
    assert main(["aggregate", "--metrics", *map(str, paths), "--out-dir", str(out),
                 "--show-metrics", "error", "balanced_error"]) == 0
    markdown = (out / "summary.md").read_text()
    assert "## Balanced test error (%)" in markdown and "macro-F1" not in markdown
    with pytest.raises(SystemExit):  # argparse: not a metric
        main(["aggregate", "--out-dir", str(out), "--show-metrics", "accuracy"])


def test_report_precision_is_what_the_trainer_recorded():
    from semibench.report.aggregate import precision

    assert precision("cuda", {"train": {"amp": "bf16"}}, "fp16") == "fp16 autocast"
    assert precision("cuda", {"train": {"amp": "fp16"}}) == "fp16 autocast"  # older files
    assert precision("cuda", {"train": {"amp": "none"}}) == "fp32"
    assert precision("cpu", {"train": {"amp": "bf16"}}) == "fp32"
    assert precision("cuda", {}) == "not recorded"
