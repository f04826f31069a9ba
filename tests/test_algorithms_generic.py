"""Registry-driven checks of every algorithm: its contract in one Trainer (steps that never wait
for the device, an exact checkpoint round trip of its state, an exact resume), one short run on
images and on text and audio where the algorithm reads them (a tiny random text encoder: the
real MiniLM runs in the pipeline test), and (slow) that it learns on a tiny problem."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest

from semibench.algorithms import ALGORITHMS, make_params
from semibench.algorithms.base import param_table
from semibench.backbones.minilm import bundled_minilm_dir
from semibench.cli import main
from semibench.config import check_config, run_config
from semibench.splits import make_split, write_split
from semibench.tasks import create_task, load_prepared
from semibench.tasks.base import write_prepared
from semibench.train.checkpoint import load_checkpoint
from semibench.train.loop import Trainer, train_run
from tests.helpers.runs import states_equal
from tests.helpers.sync import SyncRecorder

DOMAIN_TASK = {"image": "mnist", "text": "newsgroups", "audio": "keywords"}
#: text: a two-layer BERT with random weights and the bundled MiniLM's WordPiece vocabulary
TINY_TEXT = {"backbone": "bert_base_uncased", "backbone_args": {
    "max_length": 16, "pretrained": False, "tokenizer_dir": str(bundled_minilm_dir()),
    "config_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64}}}
#: VAT perturbs the input embeddings (the token embeddings for text)
READS_INPUTS = {"vat"}


def reads_domain(algorithm: str, domain: str) -> bool:
    """Whether ``algorithm`` does something of its own in ``domain``: per-domain parameters
    or trainer settings (USB's), a domain check (rotation, manifold mixup), or its inputs."""
    cls = ALGORITHMS.get(algorithm)
    return domain == "image" or algorithm in READS_INPUTS or \
        domain in cls.param_defaults or domain in cls.train_defaults


DOMAIN_RUNS = [(a, d) for a in ALGORITHMS.names() for d in DOMAIN_TASK if reads_domain(a, d)]
TINY = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2, "eval_batch_size": 64,
        "device": "cpu"}


def synthetic(domain: str, num_classes: int, n: int, rng: np.random.Generator):
    """Small random inputs in each domain's prepared format, with learnable class signal."""
    y = np.repeat(np.arange(num_classes), n // num_classes)
    if domain == "image":
        x = rng.integers(0, 60, size=(len(y), 1, 28, 28)).astype(np.uint8)
        for c in range(num_classes):  # a bright bar whose row encodes the class
            x[y == c, 0, 2 + 2 * c : 4 + 2 * c, 4:24] = 250
    elif domain == "text":
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
        x = np.array([f"{words[c % 6]} news about {words[(c + i) % 6]} today {i}"
                      for i, c in enumerate(y)])
    else:
        t = np.arange(16000) / 16000
        x = np.stack([0.3 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in y]).astype(np.float32)
        x += rng.normal(0, 0.02, x.shape).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Per domain: a prepared dir (real task metadata, synthetic data) and a split."""
    out = {}
    rng = np.random.default_rng(0)
    for domain, name in DOMAIN_TASK.items():
        task = create_task(name)
        root = tmp_path_factory.mktemp(domain)
        c = task.num_classes
        train_x, train_y = synthetic(domain, c, 12 * c, rng)
        test_x, test_y = synthetic(domain, c, 2 * c, rng)
        extra = {"sample_rate": 16000} if domain == "audio" else None  # as the real task's meta
        write_prepared(root / "prepared", task=task, train_x=train_x, train_y=train_y,
                       test_x=test_x, test_y=test_y, raw_checksums={}, extra=extra)
        split = make_split(train_y, task=name, num_classes=c, num_labels=2 * c,
                           val_per_class=2, seed=0)
        write_split(split, root / "split.json")
        out[domain] = (name, root / "prepared", root / "split.json", 2 * c)
    return out


def settings(task: str, num_labels: int, algorithm: str, **train) -> dict:
    tiny = {**TINY, **train}
    extra = TINY_TEXT if task == "newsgroups" else {}
    cfg = check_config({"algorithms": [algorithm], "seeds": [0],
                        "tasks": {task: {"num_labels": [num_labels], "train": tiny, **extra}}})
    return run_config(cfg, task, num_labels, algorithm, 0)


@pytest.mark.parametrize("algorithm, domain", DOMAIN_RUNS)
def test_runs_in_its_domains(algorithm, domain, tiny_data, tmp_path):
    task, prepared, split, n = tiny_data[domain]
    run = settings(task, n, algorithm)
    metrics = train_run(run, prepared, split, tmp_path)
    assert metrics["last"]["iteration"] == TINY["iterations"]
    assert metrics["config"] == run  # the numbers trace back to exactly this run
    # the test set has 2 samples per class: the error is whole samples and equals 100 minus
    # the mean per-class accuracy; every logged loss is finite
    last = metrics["last"]
    n_test = 2 * len(last["test_per_class_accuracy"])
    assert last["test_error"] * n_test / 100 == pytest.approx(round(last["test_error"] * n_test
                                                                    / 100))
    assert last["test_error"] == pytest.approx(
        100 - sum(last["test_per_class_accuracy"]) / len(last["test_per_class_accuracy"]))
    with open(tmp_path / "curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[-1]["test_error"]) == last["test_error"]


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_contract_sync_free_steps_checkpoint_round_trip_and_exact_resume(algorithm, tiny_data,
                                                                          tmp_path):
    """Every algorithm: no step waits for the device (dash's rho schedule, the memory banks of
    comatch/simmatch, the rotation head of crmatch/remixmatch and the mixup draw of
    mixmatch/remixmatch included); its state survives a checkpoint exactly; a Trainer resumed
    from it takes the same next step as the one that wrote it."""
    task, prepared, split, n = tiny_data["image"]
    run = settings(task, n, algorithm, iterations=8, eval_every=8, prefetch=False)
    first = Trainer(run, prepared, split, tmp_path)
    first.check_each_step = False  # as on CUDA: the loss is looked at every CHECK_EVERY steps
    for step in range(5):
        batch = first.make_batch(step)  # built ahead by the prefetcher, off the step's path
        recorder = SyncRecorder()
        with recorder:
            first.train_step(step, batch)
        assert recorder.ops == [], f"{algorithm} step {step} synchronises: {recorder.ops}"
    first.checkpoints.save(first._state(5, 0.0))  # with its SHA-256 record
    # what is on disk loads without pickle and equals the live state
    on_disk = load_checkpoint(tmp_path / "checkpoint.pt")["algorithm"]
    assert states_equal(on_disk, first.algorithm.state_dict())

    second = Trainer(run, prepared, split, tmp_path)  # resumes from checkpoint.pt
    assert second.start_iteration == 5
    assert states_equal(second.algorithm.state_dict(), first.algorithm.state_dict())
    first.train_step(5)
    second.train_step(5)  # the step logs since the last evaluation travel with the checkpoint
    assert first.logs.means() == pytest.approx(second.logs.means(), rel=1e-6, abs=1e-7)
    assert states_equal(second.algorithm.state_dict(), first.algorithm.state_dict())
    assert states_equal(second.model.state_dict(), first.model.state_dict())


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_learns_on_tiny_problem(algorithm, prepared_mnist, tmp_path):
    """40 labels of MNIST, 200 iterations: clearly better than chance (90 % error)."""
    data = load_prepared(prepared_mnist)
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), tmp_path / "split.json")
    run = settings("mnist", 40, algorithm, iterations=200, eval_every=100, batch_size=16,
                   uratio=2, eval_batch_size=512, lr=0.03)
    metrics = train_run(run, prepared_mnist, tmp_path / "split.json", tmp_path / "run")
    assert metrics["best"]["test_error"] < 60.0, metrics["best"]


# --------------------------------------------------------------------- hyper-parameter contract
def _fields(algorithm):
    return dataclasses.fields(ALGORITHMS.get(algorithm).Params)


def _outside(allowed: str, integer: bool) -> list[float]:
    """Values just outside an interval such as "(0, 1]" or "[1, inf)", of the field's type."""
    low, high = (float(v) for v in allowed[1:-1].split(","))
    step = 1 if integer else 0.5
    below = low if allowed[0] == "(" else low - step
    above = [] if high == math.inf else [high if allowed[-1] == ")" else high + step]
    return [int(v) if integer else v for v in (below, *above)]


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_every_hyper_parameter_declares_help_and_allowed_values(algorithm):
    """Declared once, with param(): a number has a range, a string its choices."""
    for f in _fields(algorithm):
        assert f.metadata.get("help"), f"{algorithm}.{f.name} has no help"
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            assert f.metadata.get("allowed"), f"{algorithm}.{f.name} has no allowed range"
        if isinstance(f.default, str):
            assert f.default in f.metadata["choices"]


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_every_declared_range_is_enforced_with_the_config_key(algorithm):
    for f in _fields(algorithm):
        allowed = f.metadata.get("allowed")
        if allowed is None:
            continue
        for value in _outside(allowed, integer=isinstance(f.default, int)):
            with pytest.raises(ValueError,
                               match=rf"algorithm_params\.{algorithm}\.{f.name}=.*: must be "
                               rf"(in|>|>=) "):
                make_params(algorithm, {f.name: value})
        with pytest.raises(ValueError, match=rf"algorithm_params\.{algorithm}\.{f.name}="):
            make_params(algorithm, {f.name: float("nan") if isinstance(f.default, float)
                                    else True})  # NaN passes no range; a bool is no number
    for f in _fields(algorithm):
        if f.metadata.get("choices"):
            with pytest.raises(ValueError, match=rf"{f.name}='bogus': must be one of"):
                make_params(algorithm, {f.name: "bogus"})


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_unknown_parameters_are_rejected_naming_the_allowed_ones(algorithm):
    known = sorted(f.name for f in _fields(algorithm))
    with pytest.raises(ValueError, match=rf"algorithm_params\.{algorithm}: unknown parameter\(s\) "
                       rf"tau; allowed: {', '.join(known) or 'none'}$"):
        make_params(algorithm, {"tau": 0.9})


def test_joint_rules_name_the_key():
    with pytest.raises(ValueError, match=r"dash\.rho_init=0\.0: must be > 0 when warmup_fraction"):
        make_params("dash", {"warmup_fraction": 0.0})
    assert make_params("dash", {"warmup_fraction": 0.0, "rho_init": 1.0}).rho_init == 1.0


def test_list_params_shows_name_default_range_and_help(capsys):
    assert main(["list", "--params", "simmatch"]) in (0, None)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {f.name for f in _fields("simmatch")}
    assert "0.1 (audio: 0.2)" in rows["T"] and "(0, inf)" in rows["T"]
    assert "[0, 1)" in rows["bank_momentum"] and "0.7" in rows["bank_momentum"]
    assert "EMA model" in rows["ema_teacher"]
    flex = {r["name"]: r for r in param_table("flexmatch")}
    assert flex["mapping"]["allowed"] == "{concave, convex, linear}"
    assert flex["mapping"]["default"] == '"convex"'
    with pytest.raises(SystemExit, match="unknown algorithm 'fixmach'"):
        main(["list", "--params", "fixmach"])
