"""SemiBench's side: the real trainer on synthetic prepared data, timed in full and in phases."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speedbench.settings import Setting
from speedbench.timing import Phases, sync


def _bert_tokenizer_dir() -> str:
    from semibench.backbones.minilm import bundled_minilm_dir

    return str(bundled_minilm_dir())  # bert-base-uncased's WordPiece vocabulary


def semibench_run(s: Setting, device: str, amp: str, compile_mode: str) -> dict[str, Any]:
    """The resolved run settings of the USB task, with this setting's sizes and random
    weights."""
    from semibench.config import backbone_arguments, check_config, run_config

    config = check_config({"algorithms": ["fixmatch"], "seeds": [0],
                           "tasks": {s.task: {"num_labels": [_num_labels(s.task)]}}})
    run = run_config(config, s.task, _num_labels(s.task), "fixmatch", 0)
    args = {**run["backbone_args"], **s.backbone_args}
    allowed = backbone_arguments(s.backbone)
    if allowed is None or "pretrained" in allowed:
        args["pretrained"] = False
    if s.backbone.startswith("bert"):
        args.update(tokenizer_dir=_bert_tokenizer_dir(),
                    config_overrides={"vocab_size": 30522, **args.get("config_overrides", {})})
    run["backbone_args"] = args
    if s.backbone.startswith(("hubert", "wav2vec2")):
        run["augment"] = {**run["augment"], "crop_seconds": s.seconds}
    run["train"].update(batch_size=s.batch_size, uratio=s.uratio, device=device, amp=amp,
                        iterations=100_000, eval_every=100_000)
    if compile_mode != "none" or "compile" in run["train"]:
        run["train"]["compile"] = compile_mode
    return run


def _num_labels(task: str) -> int:
    from semibench.tasks import create_task

    t = create_task(task)
    return t.label_budgets[0] if t.fixed_labelled else 4 * t.num_classes


def write_synthetic(s: Setting, root: Path, n: int = 256) -> tuple[Path, Path]:
    """A prepared directory and split of random data in the task's stored format."""
    from semibench.splits import Split, write_split
    from semibench.tasks import create_task
    from semibench.tasks.base import write_prepared

    task = create_task(s.task)
    rng = np.random.default_rng(0)
    classes = task.num_classes
    n = max(n, 2 * classes)
    y = np.arange(n) % classes
    if task.domain == "image":
        chans = 3
        x = rng.integers(0, 256, (n, chans, s.stored_side, s.stored_side), dtype=np.uint8)
    elif task.domain == "text":
        words = ["semi", "supervised", "benchmark", "review", "movie", "great", "plot", "actor",
                 "story", "boring", "music", "scene", "watch", "again", "never", "always"]
        x = np.array([" ".join(rng.choice(words, s.text_len + 8)) for _ in range(n)])
    else:
        x = (rng.standard_normal((n, int(s.seconds * 16000))) * 0.1).astype(np.float32)
    prepared = root / "prepared"
    val = np.arange(min(n // 4, 4 * classes))
    extra: dict[str, Any] = {}
    if task.domain == "audio":
        extra["sample_rate"] = 16000
    write_prepared(prepared, task=task, train_x=x, train_y=y, test_x=x[:classes],
                   test_y=y[:classes], raw_checksums={}, extra=extra,
                   val_x=x[val], val_y=y[val])
    labelled = list(range(len(val), len(val) + max(classes, s.batch_size)))
    split = Split(task=s.task, num_labels=len(labelled), seed=0, labelled=labelled,
                  unlabelled=list(range(n)), validation=[], include_labelled_in_unlabelled=True,
                  validation_source="prepared")
    write_split(split, root / "split.json")
    return prepared, root / "split.json"


class SemiBenchSide:
    """The real trainer on synthetic data; ``full`` steps and ``split`` (timed) steps."""

    name = "SemiBench"

    def __init__(self, s: Setting, device: str, amp: str, compile_mode: str, root: Path):
        from semibench.train.loop import Trainer

        prepared, split = write_synthetic(s, root)
        out = root / f"run-{amp}-{compile_mode}"
        out.mkdir()
        self.device = device
        self.trainer = Trainer(semibench_run(s, device, amp, compile_mode), prepared, split, out)
        self.step = 0
        self.split_step = 50_000

    def full(self, n: int) -> float:
        """Seconds per step over ``n`` consecutive ``Trainer.train_step`` calls, fed as
        ``Trainer.fit`` feeds them: by the trainer's prefetcher (batch t + 1 is built while
        step t runs) when it has one and ``train.prefetch`` is on."""
        tr = self.trainer
        prefetch = None
        try:
            from semibench.train.prefetch import Prefetcher

            prefetch = Prefetcher(tr.make_batch, enabled=getattr(tr.cfg, "prefetch", False),
                                  device=tr.device)
        except ImportError:  # an older trainer: views inline
            pass
        sync(self.device)
        start = time.perf_counter()
        try:
            for i in range(n):
                if prefetch is None:
                    tr.train_step(self.step)
                else:
                    following = self.step + 1 if i + 1 < n else None
                    tr.train_step(self.step, prefetch.get(self.step, following))
                self.step += 1
            sync(self.device)
        finally:
            if prefetch is not None:
                prefetch.close()
        return (time.perf_counter() - start) / n

    def split(self) -> dict[str, float]:
        """One step in phases (seconds each), synchronised between phases."""
        tr, dev = self.trainer, self.device
        step = self.split_step
        self.split_step += 1
        t = Phases(dev)
        batch = _move(tr.make_batch(step), torch.device(dev))
        t.mark("data")
        tr.train_step(step, batch, phase=t.mark)  # the trainer's own step, timed by phase
        return t.times

    def eval_seconds(self, batch: int, reps: int = 3) -> float:
        """Seconds per eval forward of ``batch`` samples (model only, no views)."""
        tr = self.trainer
        x = tr.x_val[:1].repeat(batch, *([1] * (tr.x_val.dim() - 1)))
        gen = torch.Generator().manual_seed(0)
        x = tr.views["eval"](x, gen).to(self.device)
        model = tr.ema.model if tr.ema is not None else tr.model
        model.eval()
        dtype = getattr(tr, "autocast_dtype", None)
        times = []
        with torch.no_grad(), torch.autocast(torch.device(self.device).type, dtype=dtype,
                                             enabled=dtype is not None):
            for _ in range(reps + 1):
                sync(self.device)
                start = time.perf_counter()
                model(x)
                sync(self.device)
                times.append(time.perf_counter() - start)
        return statistics.median(times[1:])


def _is_compiled(trainer: Any) -> bool:
    """Whether the trainer compiled its model: its own record (``Trainer.compiled``, the mode
    really used), else a compiled module or ``forward_features``."""
    from torch._dynamo.eval_frame import OptimizedModule

    recorded = getattr(trainer, "compiled", None)
    if isinstance(recorded, str):
        return recorded not in ("", "none")
    model = trainer.model
    return (getattr(model, "_compiled_call_impl", None) is not None
            or isinstance(model, OptimizedModule)
            or hasattr(getattr(model, "forward_features", None), "_torchdynamo_orig_callable"))


def _move(batch: Any, device: torch.device) -> Any:
    batch.x_lb = {k: v.to(device, non_blocking=True) for k, v in batch.x_lb.items()}
    batch.x_ulb = {k: v.to(device, non_blocking=True) for k, v in batch.x_ulb.items()}
    for name in ("y_lb", "idx_lb", "idx_ulb", "y_ulb"):
        value = getattr(batch, name)
        if value is not None:
            setattr(batch, name, value.to(device))
    return batch
