"""The fast training step (that no step of any algorithm waits for the device is part of each
algorithm's contract, test_algorithms_generic.py): prefetching that changes nothing,
a NaN still stops the run without a per-step sync, compiled steps that agree with eager ones,
and settings the device cannot honour said in one line (or as a logged fallback)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch._inductor.config

from semibench.train import trainer
from semibench.train.logs import FiniteGuard, LogSums, NonFiniteLossError
from semibench.train.loop import Trainer, precision_dtype, train_run
from tests.helpers.runs import mnist_settings as settings


@pytest.mark.parametrize("algorithm", ["fixmatch", "flexmatch"])
def test_prefetching_changes_nothing(algorithm, prepared_mnist, split_path, tmp_path):
    on = train_run(settings(algorithm, prefetch=True), prepared_mnist, split_path, tmp_path / "a")
    off = train_run(settings(algorithm, prefetch=False), prepared_mnist, split_path, tmp_path / "b")
    assert (on["best"], on["last"]) == (off["best"], off["last"])
    assert (tmp_path / "a/curve.csv").read_text().splitlines()[1].rsplit(",", 1)[0] == \
        (tmp_path / "b/curve.csv").read_text().splitlines()[1].rsplit(",", 1)[0]


def test_nan_is_caught_at_the_next_check_without_a_per_step_sync(prepared_mnist, split_path,
                                                                  tmp_path, monkeypatch):
    from semibench.algorithms.fixmatch import FixMatch

    original = FixMatch.compute_loss

    def poisoned(self, out, batch, iteration):
        res = original(self, out, batch, iteration)
        if iteration == 1:
            res.loss = res.loss * float("nan")
        return res

    monkeypatch.setattr(FixMatch, "compute_loss", poisoned)
    original_init = Trainer.__init__

    def as_on_cuda(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.check_each_step = False

    monkeypatch.setattr(Trainer, "__init__", as_on_cuda)
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at iteration 1"):
        train_run(settings("fixmatch"), prepared_mnist, split_path, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    assert not list(tmp_path.glob("checkpoint*.pt"))  # the diverged model is never saved


def test_log_sums_and_guard():
    sums = LogSums()
    for value, weight in [(1.0, 1.0), (float("nan"), 0.0), (3.0, torch.tensor(1.0))]:
        sums.add("acc", torch.tensor(value), weight)
    sums.add("loss", 2.0)
    assert sums.means() == {"acc": 2.0, "loss": 2.0}
    restored = LogSums()
    restored.load_state_dict(sums.state_dict())
    assert restored.means() == sums.means()
    guard = FiniteGuard()
    guard.observe(torch.tensor(1.0), 0)
    guard.check()
    guard.observe(torch.tensor(float("inf")), 1)
    guard.observe(torch.tensor(float("nan")), 2)
    with pytest.raises(NonFiniteLossError, match="non-finite loss inf at iteration 1"):
        guard.check()


def test_precision_and_compile_settings_are_recorded(prepared_mnist, split_path, tmp_path):
    assert precision_dtype("bf16", torch.device("cpu")) is None  # the CPU trains in float32
    metrics = train_run(settings("supervised", amp="fp16"), prepared_mnist, split_path, tmp_path)
    assert metrics["precision"] == "fp32" and metrics["compile"] == "none"
    assert metrics["fallbacks"] == []


def test_compile_obstacle_is_a_logged_fallback(prepared_mnist, split_path, tmp_path, monkeypatch):
    from semibench.backbones.cnn import SmallCNN

    monkeypatch.setattr(SmallCNN, "compile_obstacle", lambda self: "data-dependent shapes",
                        raising=False)
    trainer = Trainer(settings("supervised", compile="default"), prepared_mnist, split_path,
                      tmp_path)
    assert trainer.compiled == "none"
    assert trainer.fallbacks == ["train.compile=default not applied: data-dependent shapes"]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, backend", [
    ("fixmatch", "inductor"), ("meanteacher", "aot_eager"), ("mixmatch", "aot_eager"),
    ("simmatch", "aot_eager")])
def test_compiled_step_agrees_with_eager(algorithm, backend, prepared_mnist, split_path, tmp_path,
                                         monkeypatch):
    """One algorithm per family (pseudo-labelling, consistency, mixup, memory bank): three
    steps compiled and eager give the same losses and weights within 1e-4. FixMatch goes
    through inductor's code generation (minutes of C++ compilation on a CPU); the others
    through the same graph capture and autograd tracing, without code generation."""
    if backend != "inductor":
        compile_ = torch.compile
        monkeypatch.setattr(torch, "compile",
                            lambda fn, mode=None: compile_(fn, backend=backend))

    def run(mode: str, out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
        trainer = Trainer(settings(algorithm, compile=mode, prefetch=False), prepared_mnist,
                          split_path, out)
        losses = []
        for step in range(3):
            trainer.train_step(step)
            losses.append(float(trainer.logs.sums["loss"]))
        return losses, {k: v.clone() for k, v in trainer.model.state_dict().items()}

    torch._dynamo.reset()
    eager_losses, eager_weights = run("none", tmp_path / "eager")
    # inductor draws its own random numbers (dropout) unless told to use eager's generator
    with torch._inductor.config.patch(fallback_random=True):
        compiled_losses, compiled_weights = run("default", tmp_path / "compiled")
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    for name, value in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], value, rtol=1e-4, atol=1e-4,
                                   msg=lambda m, n=name: f"{n}: {m}")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_without_a_per_step_check_the_loss_is_looked_at_every_check_every_steps(
        prepared_mnist, split_path, tmp_path, monkeypatch):
    """As on CUDA: a NaN at iteration 0 stops the run at the first multiple of CHECK_EVERY
    (here 2, before the first evaluation at 5), not at once and not only at the evaluation."""
    from semibench.algorithms.fixmatch import FixMatch

    assert 1 <= trainer.CHECK_EVERY <= 100  # a NaN is caught within a small interval of steps
    original = FixMatch.compute_loss

    def poisoned(self, out, batch, iteration):
        res = original(self, out, batch, iteration)
        if iteration == 0:
            res.loss = res.loss * float("nan")
        return res

    steps: list[int] = []
    original_step = Trainer.train_step

    def counted(self, step, *args, **kwargs):
        self.check_each_step = False
        steps.append(step)
        return original_step(self, step, *args, **kwargs)

    monkeypatch.setattr(FixMatch, "compute_loss", poisoned)
    monkeypatch.setattr(Trainer, "train_step", counted)
    monkeypatch.setattr(trainer, "CHECK_EVERY", 2)
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at iteration 0"):
        train_run(settings("fixmatch", eval_every=5, prefetch=False), prepared_mnist, split_path,
                  tmp_path)
    assert steps == [0, 1]


def test_convnets_train_channels_last_and_agree_with_contiguous(prepared_mnist, split_path,
                                                              tmp_path):
    """``memory_format: auto`` trains the small CNN channels-last (faster with oneDNN), with the
    same results as the contiguous layout up to float rounding; metrics.json says which."""
    fast = Trainer(settings("fixmatch"), prepared_mnist, split_path, tmp_path / "a")
    assert fast.model.channels_last
    conv = next(m for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    a = train_run(settings("fixmatch"), prepared_mnist, split_path, tmp_path / "a")
    b = train_run(settings("fixmatch", memory_format="contiguous"), prepared_mnist, split_path,
                  tmp_path / "b")
    assert (a["memory_format"], b["memory_format"]) == ("channels_last", "contiguous_format")
    assert a["joint_pass"] is True  # the small CNN has batch norm: one joint pass
    ca = (tmp_path / "a/curve.csv").read_text().splitlines()[1].split(",")
    cb = (tmp_path / "b/curve.csv").read_text().splitlines()[1].split(",")
    header = (tmp_path / "a/curve.csv").read_text().splitlines()[0].split(",")
    loss = header.index("loss")
    assert float(ca[loss]) == pytest.approx(float(cb[loss]), rel=1e-4)


def test_without_batch_norm_the_pseudo_label_views_skip_autograd(prepared_mnist, split_path,
                                                                  tmp_path):
    run = settings("fixmatch")
    run["backbone"], run["backbone_args"] = "timm/vit_tiny_patch16_224", {
        "weights": "none", "img_size": 28, "model_args": {"in_chans": 1, "depth": 1,
                                                          "patch_size": 7}}
    trainer = Trainer(run, prepared_mnist, split_path, tmp_path)
    assert trainer.cfg.use_cat and not trainer.joint_pass and not trainer.model.channels_last
    batch = trainer.make_batch(0)
    inputs = {f"lb_{v}": x for v, x in batch.x_lb.items()}
    inputs.update({f"ulb_{v}": x for v, x in batch.x_ulb.items()})
    out = trainer.algorithm.forward(trainer.model, inputs, trainer.joint_pass)
    assert out.logits["ulb_weak"].grad_fn is None and out.logits["ulb_strong"].grad_fn
    joint = trainer.algorithm.forward(trainer.model.eval(), inputs, True)
    split = trainer.algorithm.forward(trainer.model.eval(), inputs, False)
    for key in inputs:  # the same logits either way (eval mode: no dropout draws)
        assert torch.allclose(joint.logits[key], split.logits[key], atol=1e-5)
