"""Time the weak/strong views of every domain on one CPU thread (they run every training step).

    .venv/bin/python benchmarks/bench_views.py
"""

from __future__ import annotations

import time

import torch

from semibench.augment import build_views


def timed(fn, x, repeats: int = 20) -> float:
    gen = torch.Generator().manual_seed(0)
    fn(x, gen)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x, gen)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    torch.set_num_threads(1)
    cases = {
        "image 224x1x28x28": ("image", {"mean": (0.5,), "std": (0.5,), "hflip": False},
                              torch.randint(0, 256, (224, 1, 28, 28), dtype=torch.uint8)),
        "image 128x3x32x32": ("image", {"mean": (0.5,) * 3, "std": (0.5,) * 3},
                              torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)),
        "text 64x64 tokens": ("text", {}, torch.cat([torch.full((64, 1), 101),
                                                     torch.randint(1000, 5000, (64, 62)),
                                                     torch.full((64, 1), 102)], dim=1)),
        "audio 64x1s 16kHz": ("audio", {"n_mels": 32, "n_fft": 512, "hop_length": 320},
                              torch.randn(64, 16000) * 0.1),
    }
    print(f"{'batch':<20} {'eval ms':>8} {'weak ms':>8} {'strong ms':>9}")
    for name, (domain, spec, x) in cases.items():
        views = build_views(domain, spec)
        ms = [timed(views[v], x) for v in ("eval", "weak", "strong")]
        print(f"{name:<20} {ms[0]:8.2f} {ms[1]:8.2f} {ms[2]:9.2f}")


if __name__ == "__main__":
    main()
