"""The training loop on the real MNIST task at toy sizes: outputs, NaN handling, exact resume."""

import csv
import json

import numpy as np
import pytest
import torch

from semibench.config import check_config, run_config
from semibench.splits import make_split, write_split
from semibench.tasks import load_prepared
from semibench.train import loop
from semibench.train.loop import NonFiniteLossError, train_run
from tests.helpers.runs import TRAIN
from tests.helpers.runs import mnist_settings as settings


def test_outputs(prepared_mnist, split_path, tmp_path):
    metrics = train_run(settings("fixmatch"), prepared_mnist, split_path, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["best"]["iteration"] in (3, 6) and on_disk["last"]["iteration"] == 6
    assert len(on_disk["last"]["test_per_class_accuracy"]) == 10
    assert on_disk["device"] == "cpu" and on_disk["wall_time_s"] > 0
    assert on_disk["versions"]["torch"].startswith("2.11")
    assert on_disk["config"]["algorithm_params"]["p_cutoff"] == 0.95
    # the size of the validation set that chose "best", beside it
    assert on_disk["val_size"] == len(json.loads(split_path.read_text())["validation"]) > 0
    rows = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [3, 6]
    assert all(0 <= float(r["mask_ratio"]) <= 1 for r in rows)
    assert float(rows[-1]["test_error"]) == pytest.approx(on_disk["last"]["test_error"])
    # the selected model is the one with the lowest validation error, never chosen on test
    best_row = min(rows, key=lambda r: float(r["val_error"]))
    assert float(best_row["test_error"]) == pytest.approx(on_disk["best"]["test_error"])
    # a finished run keeps its weights but no checkpoint: it is never resumed
    assert not list(tmp_path.glob("checkpoint*"))
    # train.keep_weights' default: the best-on-validation weights only
    assert "head.weight" in torch.load(tmp_path / "model_best.pt", weights_only=True)
    assert not (tmp_path / "model_last.pt").exists() and on_disk["keep_weights"] == "best"
    assert "keep_weights" not in on_disk["config"]["train"]  # the default: settings as before
    assert on_disk["inputs"]["data_sha256"] == json.loads(
        (prepared_mnist / "meta.json").read_text())["data_sha256"]


KEPT = {"best": ["model_best.pt"], "last": ["model_last.pt"],
        "both": ["model_best.pt", "model_last.pt"], "none": []}


@pytest.mark.parametrize("keep", ["last", "both", "none"])
def test_keep_weights_keeps_those_files_and_the_same_numbers(prepared_mnist, split_path,
                                                             tmp_path, keep):
    """train.keep_weights decides which weight files a finished run keeps (the others are
    never written), is recorded in metrics.json, and changes no number."""
    default = train_run(settings("fixmatch"), prepared_mnist, split_path, tmp_path / "default")
    out = tmp_path / keep
    metrics = train_run(settings("fixmatch", keep_weights=keep), prepared_mnist, split_path,
                        out)
    assert sorted(p.name for p in out.glob("*.pt")) == KEPT[keep]
    assert metrics["keep_weights"] == keep and metrics["config"]["train"]["keep_weights"] == keep
    assert (metrics["best"], metrics["last"]) == (default["best"], default["last"])
    rows = [r.rsplit(",", 1)[0] for r in (out / "curve.csv").read_text().splitlines()]
    assert rows == [r.rsplit(",", 1)[0]
                    for r in (tmp_path / "default/curve.csv").read_text().splitlines()]
    if keep == "both":
        best = torch.load(out / "model_best.pt", weights_only=True)
        assert all(torch.equal(v, best[k]) for k, v in torch.load(
            tmp_path / "default/model_best.pt", weights_only=True).items())


def test_keep_weights_is_one_value(tmp_path):
    from semibench.config import ConfigError

    for value, message in (("all", "train.keep_weights='all': allowed values: best, last, "
                                   "both, none"),
                           (["best", "both"], "not a sweep axis")):
        with pytest.raises(ConfigError, match=message):
            check_config({"algorithms": ["fixmatch"], "seeds": [0],
                          "tasks": {"mnist": {"num_labels": [40], "train": {"keep_weights": value}}}})


def test_supervised_has_no_pseudo_label_columns(prepared_mnist, split_path, tmp_path):
    train_run(settings("supervised"), prepared_mnist, split_path, tmp_path)
    rows = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert rows[0]["mask_ratio"] == "" and rows[0]["unsup_loss"] == ""


def test_non_finite_loss_stops_without_metrics(prepared_mnist, split_path, tmp_path, monkeypatch):
    from semibench.algorithms.fixmatch import FixMatch

    original = FixMatch.compute_loss

    def poisoned(self, out, batch, iteration):
        res = original(self, out, batch, iteration)
        if iteration == 4:
            res.loss = res.loss * float("nan")
        return res

    monkeypatch.setattr(FixMatch, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at iteration 4"):
        train_run(settings("fixmatch"), prepared_mnist, split_path, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "curve.csv").exists()


def test_killed_run_resumes_exactly(prepared_mnist, split_path, tmp_path, monkeypatch):
    run = settings("fixmatch")
    reference = train_run(run, prepared_mnist, split_path, tmp_path / "ref")

    original = loop.Trainer.train_step

    def killed(self, step, *args):
        if step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original(self, step, *args)

    monkeypatch.setattr(loop.Trainer, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train_run(run, prepared_mnist, split_path, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "metrics.json").exists()  # nothing looks complete
    monkeypatch.setattr(loop.Trainer, "train_step", original)

    resumed = train_run(run, prepared_mnist, split_path, tmp_path / "resumed")
    assert resumed["best"] == reference["best"] and resumed["last"] == reference["last"]
    ref_curve = (tmp_path / "ref" / "curve.csv").read_text().splitlines()
    new_curve = (tmp_path / "resumed" / "curve.csv").read_text().splitlines()
    strip = [lambda rows: [",".join(r.split(",")[:-1]) for r in rows]][0]  # drop elapsed_s
    assert strip(new_curve) == strip(ref_curve)


def test_same_seed_same_metrics_on_cpu(prepared_mnist, split_path, tmp_path):
    a = train_run(settings("supervised"), prepared_mnist, split_path, tmp_path / "a")
    b = train_run(settings("supervised"), prepared_mnist, split_path, tmp_path / "b")
    assert a["best"] == b["best"] and a["last"] == b["last"]


def test_checkpoint_of_other_config_is_not_resumed(prepared_mnist, split_path, tmp_path):
    train_run(settings("supervised", lr=0.01), prepared_mnist, split_path, tmp_path)
    fresh = train_run(settings("supervised", lr=0.02), prepared_mnist, split_path, tmp_path / "x")
    again = train_run(settings("supervised", lr=0.02), prepared_mnist, split_path, tmp_path)
    assert again["last"] == fresh["last"]


def test_source_dev_split_and_unlabelled_only_samples(prepared_mnist, tmp_path):
    from semibench.tasks import create_task
    from semibench.tasks.base import write_prepared

    data = load_prepared(prepared_mnist)
    order = np.random.default_rng(0).permutation(len(data.train_y))
    train, val = order[:1500], order[3000:3100]
    y = data.train_y[train].copy()
    y[1000:] = -1  # unlabelled-only samples, as STL-10's
    write_prepared(tmp_path / "prep", task=create_task("mnist"), train_x=data.train_x[train],
                   train_y=y, test_x=data.test_x, test_y=data.test_y, raw_checksums={},
                   val_x=data.train_x[val], val_y=data.train_y[val])
    split = make_split(y, task="mnist", num_classes=10, num_labels=20, val_per_class=20, seed=0,
                       validation_source="prepared")
    write_split(split, tmp_path / "split.json")
    assert split.validation == [] and set(range(1000, 1500)) <= set(split.unlabelled)
    for algorithm in ("fixmatch", "fullysupervised"):
        trainer = loop.Trainer(settings(algorithm), tmp_path / "prep", tmp_path / "split.json",
                               tmp_path / algorithm)
        assert len(trainer.y_val) == 100  # the source's dev set
        assert (trainer.y_train[trainer.lb_pool] >= 0).all()  # never a -1 label
        if algorithm == "fullysupervised":
            assert len(trainer.lb_pool) == 1000
        trainer.fit()


def test_backtranslations_feed_the_strong_text_view(tmp_path):
    from semibench.backtranslate import METHOD_MARIAN
    from semibench.tasks import create_task

    task = create_task("newsgroups")
    task.fetch(tmp_path / "raw")
    task.prepare(tmp_path / "raw", tmp_path / "prep")
    data = load_prepared(tmp_path / "prep")
    table = np.stack([data.train_x, np.char.upper(data.train_x), data.train_x[::-1]], axis=1)
    np.savez(tmp_path / "bt.npz", texts=table, method=np.array(METHOD_MARIAN),
             source_data_sha256=np.array(data.meta["data_sha256"]))
    write_split(make_split(data.train_y, task="newsgroups", num_classes=20, num_labels=40,
                           val_per_class=10, seed=0), tmp_path / "split.json")
    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0], "tasks": {"newsgroups": {
        "num_labels": [40], "backbone_args": {"max_length": 16}, "train": TRAIN}}})
    run = run_config(cfg, "newsgroups", 40, "fixmatch", 0)
    trainer = loop.Trainer(run, tmp_path / "prep", tmp_path / "split.json", tmp_path / "run",
                           backtranslations=tmp_path / "bt.npz")
    assert trainer.x_train.shape == (len(data.train_y), 3, 16)
    assert trainer.text_strong_view == "back-translation"
    batch = trainer.make_batch(0)
    assert batch.x_ulb["weak"].shape == batch.x_ulb["strong"].shape == (8, 16)
    trainer.fit()
    # a table made from other prepared data is refused
    np.savez(tmp_path / "bad.npz", texts=table, method=np.array(METHOD_MARIAN),
             source_data_sha256=np.array("0" * 64))
    with pytest.raises(ValueError, match="other prepared data"):
        loop.Trainer(run, tmp_path / "prep", tmp_path / "split.json", tmp_path / "run2",
                     backtranslations=tmp_path / "bad.npz")


def test_the_run_data_stands_without_a_trainer():
    """TrainingData (the port a method uses) owns the pools and views; the trainer only hears
    of a new labelled set through on_labelled."""
    import typing

    from semibench.algorithms.base import TrainingPort
    from semibench.train.access import TrainingData

    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    data = TrainingData(x_train=x, y_train=y, labelled=torch.tensor([0, 1]),
                        unlabelled=torch.tensor([2, 3, 4, 5]),
                        views={"eval": lambda t, _gen: t * 2}, device=torch.device("cpu"),
                        seed=0, num_classes=2, eval_batch_size=3)
    heard = []
    data.on_labelled = lambda: heard.append(data.labelled())
    data.set_labelled(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    assert len(heard) == 1 and heard[0][0].tolist() == [0, 1, 2]
    assert heard[0][1].tolist() == [0, 1, 1]  # the pseudo-label, not the stored one
    assert data.split_labelled()[0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="labels must lie in"):
        data.set_labelled(torch.tensor([0]), torch.tensor([2]))
    assert torch.equal(data.view(torch.tensor([5]), "eval", torch.Generator()), x[[5]] * 2)
    model = torch.nn.Linear(2, 2)
    model.forward_features, model.forward_head = (lambda t: t), model.forward
    data.model = model
    feats, logits = data.features(data.teacher, data.unlabelled())
    assert torch.equal(feats, x[2:] * 2) and logits.shape == (4, 2)
    port_members = {n for n in dir(TrainingPort) if not n.startswith("_")}
    port_members |= set(typing.get_type_hints(TrainingPort))
    assert port_members <= set(dir(data)) | set(vars(data))
