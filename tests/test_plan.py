"""The cost planner: FLOP counts against hand counts, totals, bad input, the calibration."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from semibench import plan
from semibench.backbones import BACKBONES, Backbone
from semibench.cli import main
from semibench.config import check_config, run_config

IN, HIDDEN, FEATS, CLASSES = 28 * 28, 16, 8, 10  # MNIST: 1 x 28 x 28, 10 classes


class _Mlp(Backbone):
    """Flatten -> Linear(784, 16) -> ReLU -> Linear(16, 8): FLOPs countable by hand."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(IN, HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, FEATS))
        self.num_features = FEATS
        self.reset_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


if "plan_test_mlp" not in BACKBONES:
    @BACKBONES.register("plan_test_mlp")
    def plan_test_mlp(num_classes: int) -> _Mlp:
        return _Mlp(num_classes)

# per sample: forward 2*784*16 + 2*16*8; backward: the first layer's weight gradient only
# (the input needs none), the second layer's input and weight gradients
FWD = 2 * IN * HIDDEN + 2 * HIDDEN * FEATS
BWD = 2 * IN * HIDDEN + 2 * (2 * HIDDEN * FEATS)


def mnist_config(algorithms: list[str], **train: object) -> dict:
    return check_config({
        "algorithms": algorithms, "seeds": [0, 1],
        "tasks": {"mnist": {"num_labels": [40], "backbone": "plan_test_mlp",
                            "train": {"batch_size": 4, "uratio": 2, "use_cat": True,
                                      "iterations": 100, "eval_every": 50,
                                      "eval_batch_size": 64, **train}}}})


@pytest.fixture
def calibration(tmp_path):
    path = tmp_path / "calibration.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=plan.CALIBRATION_COLUMNS)
        writer.writeheader()
        writer.writerow({"device": "cpu", "family": "plan_test_mlp",
                         "backbone": "plan_test_mlp", "amp": "none",
                         "compile": "none", "train_tflops": "0.002", "eval_tflops": "0.004",
                         "setting": "test", "step_ms": "", "step_gflops": "", "threads": 1,
                         "torch": torch.__version__, "measured": "today"})
    return path


def test_per_sample_flops_equal_the_hand_count():
    fwd, bwd, where = plan.per_sample_flops("plan_test_mlp", "{}", (1, 28, 28), torch.float32,
                                            True)
    assert (fwd, bwd, where) == (FWD, BWD, "meta")
    assert plan.per_sample_flops("plan_test_mlp", "{}", (1, 28, 28), torch.float32,
                                 False)[:2] == (FWD, 0)


def test_fixmatch_step_is_every_view_forward_and_backward_plus_the_head(calibration,
                                                                        monkeypatch):
    from semibench.train import loop

    monkeypatch.setattr(loop, "has_batch_norm", lambda model: True)  # a joint pass is needed
    config = mnist_config(["fixmatch"])
    job = plan.plan_job(run_config(config, "mnist", 40, "fixmatch", 0), "cpu", "none", "none",
                        plan.read_calibration(calibration))
    views = 4 + 8 + 8  # labelled weak + unlabelled weak and strong, one concatenated pass
    head = 3 * views * 2 * FEATS * CLASSES  # forward, input and weight gradients
    assert job.step_flops == views * (FWD + BWD) + head
    # evaluation: validation (20 per class) + test (1,000) at iterations 50 and 100
    assert job.eval_flops == FWD * (200 + 1000) * 2


def test_target_views_without_a_graph_get_no_backward(calibration):
    config = mnist_config(["fixmatch"], use_cat=False)
    job = plan.plan_job(run_config(config, "mnist", 40, "fixmatch", 0), "cpu", "none", "none",
                        plan.read_calibration(calibration))
    grad_views, target_views = 4 + 8, 8  # lb weak + ulb strong; ulb weak under no_grad
    head = 3 * grad_views * 2 * FEATS * CLASSES + target_views * 2 * FEATS * CLASSES
    assert job.step_flops == grad_views * (FWD + BWD) + target_views * FWD + head


def test_without_batch_norm_the_joint_pass_is_split(calibration):
    """use_cat changes nothing without batch norm, so the trainer (and the plan) skip the
    target views' backward."""
    rows = plan.read_calibration(calibration)
    joint = plan.plan_job(run_config(mnist_config(["fixmatch"]), "mnist", 40, "fixmatch", 0),
                          "cpu", "none", "none", rows)
    split = plan.plan_job(run_config(mnist_config(["fixmatch"], use_cat=False), "mnist", 40,
                                     "fixmatch", 0), "cpu", "none", "none", rows)
    assert joint.step_flops == split.step_flops


class _Tok:
    pad_token_id = 0


class _TextModel:
    """A text backbone's stand-in for the length estimates: trims to multiples of 4."""
    trim_multiple = 4
    tokenizer = _Tok()

    def prepare_inputs(self, texts):  # one token per word, padded to 16
        ids = torch.zeros(len(texts), 16, dtype=torch.long)
        for i, t in enumerate(texts):
            ids[i, : len(t.split())] = 1
        return ids


def test_trimmed_text_length_is_the_mean_longest_text_of_a_batch(tmp_path):
    import numpy as np

    (tmp_path / "t").mkdir()
    texts = np.array(["w " * 3, "w " * 5, "w " * 9])  # 3, 5 and 9 tokens
    np.savez(tmp_path / "t" / "data.npz", train_x=texts)
    # batches of one: kept lengths 4, 8, 12 (rounded up to 4), each a third of the draws
    assert plan.trimmed_text_length(_TextModel(), "t", tmp_path, 1, draws=3000) in (7, 8, 9)
    # batches of 200 always hold the 9-token text: 12 columns kept
    assert plan.trimmed_text_length(_TextModel(), "t", tmp_path, 200) == 12
    assert plan.trimmed_text_length(_TextModel(), "absent", tmp_path, 4) is None


def test_evaluated_text_length_follows_the_backbones_length_order(tmp_path):
    """Evaluation batches sorted texts (the backbone's ``eval_order``): 10 long texts of 100 fill 2 of 13
    batches of 8, where random batches of 8 hold one 57 % of the time."""
    import numpy as np

    class Sorted(_TextModel):
        sorts_eval_by_length = True

    class Stored(_TextModel):
        sorts_eval_by_length = False

    (tmp_path / "t").mkdir()
    np.savez(tmp_path / "t" / "data.npz", train_x=np.array(["w " * 3] * 90 + ["w " * 13] * 10))
    # sorted: widths 16, 16 and eleven 4s; mean 76 / 13
    assert plan.evaluated_text_length(Sorted(), "t", tmp_path, 8) == 6
    random = plan.trimmed_text_length(_TextModel(), "t", tmp_path, 8)
    assert 9 <= random <= 13  # 16 x 0.57 + 4 x 0.43 = 10.9
    assert plan.evaluated_text_length(Stored(), "t", tmp_path, 8) == random
    assert plan.evaluated_text_length(_TextModel(), "t", tmp_path, 8) == random
    # a sample of the set stands for it: batches scale with the sample
    assert plan.evaluated_text_length(Sorted(), "t", tmp_path, 16, sample=50) == 6


def test_counts_are_linear_in_the_batch():
    """The planner counts at batch 2 and scales: check a real ViT block at batch 8."""
    args = json.dumps({"depth": 1, "pretrained": False}, sort_keys=True)
    fwd, bwd, _ = plan.per_sample_flops("vit_small_patch2_32", args, (3, 32, 32),
                                        torch.float32, True)
    model, _ = plan.build_backbone("vit_small_patch2_32", json.loads(args))
    x = torch.randn(8, 3, 32, 32, device="meta")
    model.train()
    assert plan._flops(lambda: model.forward_features(x)) == 8 * fwd
    assert plan._flops(lambda: model.forward_features(x).sum().backward()) == 8 * (fwd + bwd)


def test_plan_totals_are_the_sum_of_the_jobs(calibration):
    result = plan.make_plan(mnist_config(["fixmatch", "supervised"]), "cpu",
                            calibration=calibration)
    assert len(result.jobs) == 4 and result.calibrated
    assert result.total_hours == pytest.approx(sum(j.hours for j in result.jobs))
    for job in result.jobs:
        seconds = job.step_flops * job.iterations / 2e9 + job.eval_flops / 4e9
        assert job.hours == pytest.approx(seconds / 3600)
    text = plan.format_plan(result)
    assert f"total: {result.total_hours:,.1f} cpu-hours" in text
    assert "UNCALIBRATED" not in text


@pytest.mark.parametrize(("keep", "files"), [("best", 1), ("both", 2), ("none", 0)])
def test_plan_reports_the_disk_the_sweep_keeps(calibration, keep, files):
    """Weights: parameters and buffers x 4 bytes, what the trainer's weight file holds; a
    checkpoint adds the optimiser's momentum (SGD) and, with EMA, a second model."""
    import io

    result = plan.make_plan(mnist_config(["fixmatch"], keep_weights=keep, ema_m=0.999), "cpu",
                            calibration=calibration)
    model = _Mlp(CLASSES)
    values = sum(t.numel() for t in model.state_dict().values())
    for job in result.jobs:
        assert job.weight_bytes == 4 * values and job.kept_files == files
        assert job.checkpoint_bytes == 4 * values * 2 + 4 * values  # model, EMA, momentum
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)  # the file: the values plus a little zip and pickle
    assert 4 * values <= len(buffer.getvalue()) <= 4 * values + 4096
    assert result.kept_bytes == 2 * files * 4 * values  # two seeds
    text = plan.format_plan(result)
    assert f"({2 * files} files, train.keep_weights {keep}" in text
    assert "each training job holds up to" in text and "disk counts parameters" in text


def test_cli_plan_prints_a_table_and_marks_an_uncalibrated_device(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("algorithms: [fixmatch]\nseeds: [0]\ntasks:\n  mnist: {num_labels: [40]}\n")
    jobs = tmp_path / "jobs.csv"
    assert main(["plan", "--configfile", str(config), "--device", "h200", "--amp", "bf16",
                 "--compile", "reduce-overhead", "--jobs-csv", str(jobs)]) == 0
    out = capsys.readouterr().out
    assert "| mnist | cnn_small | 1 |" in out and "h200-hours" in out
    assert "uncalibrated: 989 TFLOP/s peak x 0.150" in out and "UNCALIBRATED" in out
    assert len(jobs.read_text().splitlines()) == 2
    row = next(csv.DictReader(jobs.open()))
    assert float(row["weight_mb"]) > 0 and row["kept_files"] == "1"
    assert "disk: " in out and "of weights kept at the end (1 file, train.keep_weights best" \
        in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--device", "tpu9"], "unknown device 'tpu9'; known: h200"),
    (["--device", "v100", "--amp", "bf16"], "device v100 has no bf16 support"),
    (["--device", "h200", "--compile", "max"], "--compile 'max': allowed"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    config = tmp_path / "c.yaml"
    config.write_text("algorithms: [fixmatch]\nseeds: [0]\ntasks:\n  mnist: {num_labels: [40]}\n")
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--configfile", str(config), *argv])
    text = str(exc.value)
    assert message in text and "\n" not in text and text.startswith("semibench plan: error:")


def test_shipped_cpu_calibration_is_found():
    rows = plan.read_calibration()
    cpu = {r["family"] for r in rows if r["device"] == "cpu"}
    assert {"vit", "wrn"} <= cpu
    rate = plan.lookup_rate(rows, "cpu", "vit", "none", "none", "vit_small_patch2_32")
    assert rate.calibrated and rate.source.startswith("calibrated (") and rate.train > 1e9
    family = plan.lookup_rate(rows, "cpu", "vit", "none", "none", "vit_base_patch16_96")
    assert family.calibrated and family.source.startswith("calibrated on vit_s2_32")
    other = plan.lookup_rate(rows, "cpu", "speech", "none", "none")
    assert other.calibrated and "borrowed for speech (no cpu row of speech)" in other.source
    assert (rate.basis, family.basis, other.basis) == ("measured", "family", "borrowed")
    assert rate.threads == "2"
    gpu = plan.lookup_rate(rows, "h200", "vit", "bf16", "reduce-overhead")
    assert not gpu.calibrated and gpu.train == pytest.approx(989e12 * 0.15)
    assert gpu.basis == "datasheet"


def test_pretrained_backbones_build_offline_for_counting():
    """USB's backbones are built with random weights, without their weight files."""
    for name, args in [("vit_small_patch16_224", {}), ("bert_base_uncased", {"max_length": 512}),
                       ("hubert_base", {})]:
        model, how = plan.build_backbone(name, args)
        assert how == "random weights" and model.num_features == (384 if "vit" in name else 768)


def test_text_jobs_are_counted_at_measured_lengths_once_the_data_is_prepared(tmp_path):
    """Without prepared data a text job is counted at max_length and says it is an upper
    bound; with it, at the trimmed lengths its texts really have."""
    import numpy as np

    from semibench.tasks import create_task
    from semibench.tasks.base import write_prepared

    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0], "tasks": {"newsgroups": {
        "num_labels": [40], "backbone_args": {"max_length": 64},
        "train": {"iterations": 10, "eval_every": 10}}}})
    run = run_config(cfg, "newsgroups", 40, "fixmatch", 0)
    rows = plan.read_calibration()
    bound = plan.plan_job(run, "cpu", "none", "none", rows, tmp_path)  # nothing prepared here
    assert any("counted at max_length (64 tokens): an upper bound" in n for n in bound.notes)

    task = create_task("newsgroups")
    texts = np.array(["short news today"] * 200)  # [CLS] 3 words [SEP]: 5 tokens, kept as 8
    labels = np.arange(200) % task.num_classes
    write_prepared(tmp_path / "newsgroups", task=task, train_x=texts, train_y=labels,
                   test_x=texts[:40], test_y=labels[:40], raw_checksums={})
    measured = plan.plan_job(run, "cpu", "none", "none", rows, tmp_path)
    assert "newsgroups: text trimmed to 8 (evaluation 8) of 64 tokens (measured)" in measured.notes
    # attention's share makes the saving a little more than 8x
    assert measured.step_flops < bound.step_flops / 8 + 1e9
    assert measured.eval_flops < bound.eval_flops / 8


def test_every_backbone_declares_its_family_and_the_planner_reads_it(tmp_path):
    """Families come from the backbones' builders, not from name prefixes: registered names,
    ``timm/...``, ``hf/...`` (from the model's local config) and plugin backbones."""
    from transformers import BertConfig, HubertConfig

    from semibench import plugins

    assert [plan.backbone_family(n) for n in ("wrn_28_2", "vit_small_patch2_32", "minilm_l6",
                                               "bert_base_uncased", "hubert_base",
                                               "wav2vec2_base", "cnn_small")] == [
        "wrn", "vit", "bert", "bert", "speech", "speech", "cnn"]
    assert plan.backbone_family("timm/resnet18") == "timm"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8).save_pretrained(tmp_path / "bert")
    HubertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                 conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,)).save_pretrained(
        tmp_path / "hubert")
    assert plan.backbone_family(f"hf/{tmp_path / 'bert'}") == "bert"
    assert plan.backbone_family(f"hf/{tmp_path / 'hubert'}") == "speech"
    assert plan.backbone_family(f"hf/{tmp_path / 'absent'}") == "hf"  # no config to read
    assert plan.backbone_family("plan_test_mlp") == "plan_test_mlp"  # declares none
    source = tmp_path / "my_backbones.py"
    source.write_text(
        "from semibench.backbones.base import BACKBONES, planner_family\n"
        "from semibench.backbones.cnn import SmallCNN\n\n"
        "@BACKBONES.register('plan_plugin_cnn')\n"
        "@planner_family('cnn')\n"
        "def plan_plugin_cnn(num_classes, **kwargs):\n"
        "    return SmallCNN(num_classes, **kwargs)\n\n"
        "@BACKBONES.register('plan_plugin_class')\n"
        "class PlanPluginNet(SmallCNN):\n"
        "    planner_family = 'wrn'\n")
    plugins.load(str(source))
    assert plan.backbone_family("plan_plugin_cnn") == "cnn"
    assert plan.backbone_family("plan_plugin_class") == "wrn"


def test_a_job_is_costed_with_its_backbones_declared_family(calibration):
    """The family a plugin backbone declares picks the calibration rows of that family."""
    from semibench.backbones.base import planner_family

    if "plan_test_mlp_declared" not in BACKBONES:
        @BACKBONES.register("plan_test_mlp_declared")
        @planner_family("plan_test_mlp")
        def plan_test_mlp_declared(num_classes: int) -> _Mlp:
            return _Mlp(num_classes)

    config = mnist_config(["fixmatch"])
    config["tasks"]["mnist"]["backbone"] = "plan_test_mlp_declared"
    job = plan.plan_job(run_config(config, "mnist", 40, "fixmatch", 0), "cpu", "none", "none",
                        plan.read_calibration(calibration))
    assert job.family == "plan_test_mlp"
    assert job.rate.source == "calibrated on test" and job.rate.calibrated


def test_a_grey_scale_task_of_ones_own_images_is_planned(tmp_path, monkeypatch):
    """``channels: 1``: the backbone is fed the channels it takes (its first convolution's)
    at the declared image size, not RGB at 32 px."""
    from tests.helpers.own_data import write_images

    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "d")
    config = check_config({"algorithms": ["supervised", "fixmatch"], "seeds": [0], "tasks": {
        "mine": {"num_labels": [4], "train": {"iterations": 10, "eval_every": 5},
                 "from_files": {"domain": "image", "train": "d/train", "test": "d/test",
                                "image_size": 24, "channels": 1, "val_per_class": 1}}}})
    run = run_config(config, "mine", 4, "fixmatch", 0)
    model, _ = plan.build_backbone(run["backbone"], run["backbone_args"])
    assert plan.sample_shape(run, model) == ((1, 24, 24), torch.float32)
    result = plan.make_plan(config, "cpu")
    assert len(result.jobs) == 2 and all(j.step_flops > 0 for j in result.jobs)
    assert "| mine | cnn_small | 2 |" in plan.format_plan(result)


def test_timm_cache_weights_are_counted_without_the_file():
    """timm/<model> with the default ``weights: cache`` builds with ``weights: none``."""
    model, how = plan.build_backbone("timm/resnet18", {"weights": "cache"})
    assert how == "random weights" and model.num_features == 512


def test_cpu_plan_says_what_it_assumes_and_how_far_each_job_may_be_off(capsys):
    """The calibration's machine and threads, this machine, the config's threads per job, and
    per task the basis of its rate, with a footnote for each basis used."""
    config = check_config({"algorithms": ["fixmatch"], "seeds": [0], "threads": 1, "tasks": {
        "mnist": {"num_labels": [40], "train": {"iterations": 10, "eval_every": 5}},
        "cifar100": {"num_labels": [200], "backbone": "vit_small_patch2_32",
                     "backbone_args": {"pretrained": False},
                     "train": {"iterations": 10, "eval_every": 5}}}}, weights="skip")
    result = plan.make_plan(config, "cpu")
    text = plan.format_plan(result)
    assert "assumes: the machine that measured its calibration rows (CPU not recorded in " \
           "them; 2 thread(s) per job; measured 2026-12-01)" in text
    assert f"planned on: {plan.cpu_model()}, " in text and plan.cpu_model()
    assert "the config runs each job on 1 CPU thread(s) (`threads`); the calibration used 2: " \
           "expect jobs to take longer than planned, up to 2x" in text
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines()
            if line.startswith("| mnist |") or line.startswith("| cifar100 |")}
    assert rows["mnist"][8] == "borrowed" and "borrowed for cnn" in rows["mnist"][9]
    assert rows["cifar100"][8] == "measured"
    assert "basis borrowed: UNCALIBRATED FOR THIS FAMILY" in text
    assert "basis measured: this backbone's own calibration row: expect the time within " \
           "about 30 %" in text
    assert "basis family" not in text and "not counted: each job's start-up" in text


def test_finished_runs_are_set_next_to_the_plan(tmp_path, calibration):
    """metrics.json's loop time and Snakemake's whole-job time, per task and in all."""
    from semibench.plan.measured import attach_measured, benchmark_file, run_dir

    config = mnist_config(["fixmatch", "supervised"])
    result = plan.make_plan(config, "cpu", calibration=calibration)
    job = next(j for j in result.jobs if j.algorithm == "fixmatch" and j.seed == 0)
    planned = job.hours * 3600
    metrics = run_dir(tmp_path / "results", config["benchmark"], job) / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"wall_time_s": 3 * planned, "device": "cpu"}))
    tsv = benchmark_file(tmp_path / "logs", config["benchmark"], job)
    tsv.parent.mkdir(parents=True)
    tsv.write_text(f"s\th:m:s\tmax_rss\n{4 * planned:.6f}\t0:00:01\t100\n")
    other = next(j for j in result.jobs if j.algorithm == "supervised")  # on another device
    gpu = run_dir(tmp_path / "results", config["benchmark"], other) / "metrics.json"
    gpu.parent.mkdir(parents=True)
    gpu.write_text(json.dumps({"wall_time_s": 1.0, "device": "NVIDIA H100 80GB HBM3"}))
    assert attach_measured(result, config["benchmark"], tmp_path / "results") == 1
    assert job.measured_s == pytest.approx(3 * planned) and job.job_s is not None
    text = plan.format_plan(result)
    assert "| measured/planned |" in text and "| 3.0x (n 1) |" in text
    assert "measured: 1 finished run(s) of these jobs on cpu: training loops took 3.0x (n 1) " \
           "the planned time (metrics.json wall_time_s), whole jobs 4.0x (n 1)" in text
