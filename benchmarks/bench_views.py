"""Time the views of every domain on one CPU thread, at the batch sizes training uses.

    .venv/bin/python benchmarks/bench_views.py [--seconds 1.0] [--only vit] [--device cuda]

The trainer calls a view once per batch and step, so what matters is images (clips, texts) per
second at the real batch sizes: USB's ViT settings take 8 labelled + 8 unlabelled images per
step, the classic-CV WideResNet 64 + 448. Small batches are dominated by the fixed per-call
cost (Python, op dispatch), reported as ``ms/call`` at batch 1. Every case uses its task's own
``augment`` spec. Times are the CPU time of the calling thread (``time.thread_time``; torch runs
on that one thread), the best of three blocks: on an idle machine that is the wall time, and on
a shared one it does not count the time the thread waited for a core.

``--device cuda`` keeps the stored batches on the GPU (the generator stays on the CPU, as in
training), times wall clock between synchronisations, and runs every view call under
``torch.cuda.set_sync_debug_mode("error")``: a view that makes the host wait for the GPU stops
the benchmark with the offending call.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from semibench.augment import ViewFn, build_views
from semibench.tasks import create_task


def _images(b: int, side: int, channels: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (b, channels, side, side), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def _tokens(b: int, length: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    body = torch.randint(1000, 30000, (b, length - 2), generator=g)
    return torch.cat([torch.full((b, 1), 101), body, torch.full((b, 1), 102)], dim=1)


def _clips(b: int, seconds: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, int(seconds * 16000), generator=g) * 0.1).clamp(-1, 1)


#: case -> (task whose augment spec is used, domain, input maker for a batch size, batches)
CASES: dict[str, tuple[str, str, Callable[[int], torch.Tensor], tuple[int, ...]]] = {
    "ViT-S/2 32px (cifar100)": ("cifar100", "image", lambda b: _images(b, 32), (8,)),
    "WRN-28-2 32px (cifar10)": ("cifar10", "image", lambda b: _images(b, 32), (64, 448)),
    "ViT-B/16 96px (stl10)": ("stl10", "image", lambda b: _images(b, 96), (8,)),
    "ViT-S/16 224px (semi_aves)": ("semi_aves", "image", lambda b: _images(b, 256), (8,)),
    "28->32px gray as_rgb (tissuemnist)": ("tissuemnist", "image",
                                           lambda b: _images(b, 28, channels=1), (8,)),
    "BERT 128 tokens (newsgroups)": ("newsgroups", "text", _tokens, (8,)),
    "log-mel 1 s (keywords)": ("keywords", "audio", lambda b: _clips(b, 1.0), (16, 64)),
    "HuBERT 1 s (superb_ks)": ("superb_ks", "audio", lambda b: _clips(b, 1.0), (8,)),
}


def seconds_per_call(fn: ViewFn, x: torch.Tensor, budget: float) -> float:
    """Seconds per call, best of three blocks of about ``budget / 3``: thread CPU time on the
    CPU; on CUDA wall time between synchronisations, with syncs inside the calls an error."""
    gen = torch.Generator().manual_seed(0)
    cuda = x.device.type == "cuda"
    clock = time.perf_counter if cuda else time.thread_time

    def block(repeats: int) -> float:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        start = clock()
        try:
            for _ in range(repeats):
                fn(x, gen)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
                torch.cuda.synchronize()
        return (clock() - start) / repeats

    block(1)  # warm-up: caches, allocator
    repeats = max(1, int(budget / 3 / max(block(1), 1e-6)))
    return min(block(repeats) for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="timing budget per figure")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--device", default="cpu", help="where the stored batches live")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, 1 thread, data on {device}; items/s at the batch size, "
          "ms/call at batch 1")
    print(f"{'case':<36} {'batch':>5} {'weak/s':>9} {'strong/s':>9} "
          f"{'weak ms/call':>12} {'strong ms/call':>14}")
    for name, (task, domain, make, batches) in CASES.items():
        if args.only not in name:
            continue
        views = build_views(domain, dict(create_task(task).augment))
        one = make(1).to(device)
        overhead = [seconds_per_call(views[v], one, args.seconds) * 1e3 for v in ("weak",
                                                                                 "strong")]
        for b in batches:
            x = make(b).to(device)
            rate = [b / seconds_per_call(views[v], x, args.seconds) for v in ("weak", "strong")]
            print(f"{name:<36} {b:>5} {rate[0]:>9,.0f} {rate[1]:>9,.0f} "
                  f"{overhead[0]:>12.2f} {overhead[1]:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
