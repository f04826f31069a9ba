"""The views give the same numbers as the implementation the published results were made with.

``tests/data/view_reference.npz`` holds outputs of the image, text and audio views computed by
the implementation before the views were made sync-free and batched by op (commit a194082),
for fixed inputs and generators on the CPU with one thread. Every view must still reproduce
them bit for bit: the default benchmark's published numbers depend on them, and a resumed run
must see the same views as an uninterrupted one.

Saved outputs rather than a copy of the old code: the file cannot drift with later refactors,
and a deliberate change of a view shows up as a failing test that asks for the file to be
regenerated (``.venv/bin/python tests/test_augment_reference.py --write``) and the change to be
stated in the changelog.

Bit-identity is only defined for one float implementation: the file records the torch,
torchvision, torchaudio and numpy versions and the CPU's vector ISA it was made with (the
locked environment on an AVX512 machine; the outputs are the same with AVX2 kernels,
``ATEN_CPU_CAPABILITY=avx2``). Where a difference shows up on another platform (no AVX2:
torchvision resizes uint8 images through float32 instead; another torch), the test is skipped
with the reason rather than failed: there it would not tell a changed view from changed
rounding. On the recorded platform any difference fails. Image views use ``mean=0, std=1`` where possible so their outputs are
``uint8 / 255`` and are stored as ``uint8`` (exactly recoverable); one case per image layout
keeps a real mean/std and stores the float32 output, which covers the normalisation.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchaudio
import torchvision

from semibench.augment import build_views

REFERENCE = Path(__file__).parent / "data" / "view_reference.npz"
META = "__platform__"
MEAN3, STD3 = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def photos(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 images with structure (blocky low-frequency content, noise, per-image contrast
    range), so that AutoContrast, Equalize, Posterize etc. all change them."""
    g = _gen(seed)
    coarse = torch.randint(0, 256, (b, c, (h + 3) // 4, (w + 3) // 4), generator=g)
    img = coarse.repeat_interleave(4, 2).repeat_interleave(4, 3)[..., :h, :w]
    img = img + torch.randint(-20, 21, (b, c, h, w), generator=g)
    low = torch.randint(0, 100, (b, 1, 1, 1), generator=g)
    high = torch.randint(150, 256, (b, 1, 1, 1), generator=g)
    img = low + img.clamp(0, 255) * (high - low) // 255
    return img.clamp(0, 255).to(torch.uint8)


def token_ids(b: int, length: int, seed: int, k: int = 0) -> torch.Tensor:
    """BERT-style rows ``[CLS] real... [SEP] pad...`` (``[B, k, L]`` when k > 0)."""
    g = _gen(seed)
    rows = b * max(k, 1)
    x = torch.zeros((rows, length), dtype=torch.int64)
    n_real = torch.randint(1, length - 1, (rows,), generator=g)
    n_real[0] = length - 2
    n_real[1] = 1
    for i, n in enumerate(n_real.tolist()):
        x[i, 0] = 101
        x[i, 1 : n + 1] = torch.randint(1000, 30000, (n,), generator=g)
        x[i, n + 1] = 102
    return x.view(b, k, length) if k else x


def waves(b: int, length: int, seed: int, padded: bool = False) -> torch.Tensor:
    """Noisy tone bursts in [-1, 1]; with ``padded`` each clip has its own length and trailing
    zeros, as variable-length clips are stored."""
    g = _gen(seed)
    t = torch.arange(length) / 16000
    freq = 300 + 1500 * torch.rand(b, 1, generator=g)
    wav = 0.5 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.randn(b, length, generator=g)
    wav = wav.clamp(-1, 1)
    if padded:
        keep = torch.randint(length // 3, length + 1, (b,), generator=g)
        keep[0] = length
        wav = wav * (torch.arange(length)[None, :] < keep[:, None])
    return wav


#: name -> (domain, spec, input maker, {view name: generator seeds})
Case = tuple[str, dict[str, Any], Callable[[], torch.Tensor], dict[str, tuple[int, ...]]]
U8 = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
U8_1 = {"mean": (0.0,), "std": (1.0,)}
CASES: dict[str, Case] = {
    "image_cifar_u8": ("image", U8, lambda: photos(32, 3, 32, 32, 0),
                       {"weak": (0,), "strong": (1, 2)}),
    "image_cifar_float": ("image", {"mean": MEAN3, "std": STD3},
                          lambda: photos(4, 3, 32, 32, 1), {"eval": (0,), "weak": (3,),
                                                            "strong": (3,)}),
    "image_nocolor_vflip_u8": ("image", {**U8, "exclude_color_aug": True, "vflip": True,
                                         "randaugment_ops": 2},
                               lambda: photos(16, 3, 32, 32, 2), {"weak": (4,), "strong": (4,)}),
    "image_mnist_float": ("image", {"mean": (0.1307,), "std": (0.3081,), "crop_ratio": 0.875,
                                    "hflip": False},
                          lambda: photos(16, 1, 28, 28, 3), {"eval": (0,), "weak": (5,),
                                                             "strong": (5,)}),
    "image_tissue_as_rgb_u8": ("image", {**U8, "resize": 32, "as_rgb": True, "vflip": True},
                               lambda: photos(8, 1, 28, 28, 4), {"eval": (0,), "weak": (6,),
                                                                 "strong": (6,)}),
    "image_eurosat_resize_u8": ("image", {**U8, "resize": 32, "vflip": True},
                                lambda: photos(8, 3, 64, 64, 5), {"eval": (0,), "strong": (7,)}),
    "image_aves_rrc_u8": ("image", {**U8, "resize": 48, "crop_size": 40, "crop_ratio": 1.0,
                                    "strong_crop": "random_resized"},
                          lambda: photos(6, 3, 56, 56, 6), {"eval": (0,), "weak": (8,),
                                                            "strong": (8,)}),
    "image_nonsquare_u8": ("image", {**U8, "randaugment_ops": 4},
                           lambda: photos(12, 3, 20, 24, 7), {"weak": (9,), "strong": (9,)}),
    "image_96px_u8": ("image", U8, lambda: photos(3, 3, 96, 96, 8), {"strong": (10,)}),
    "image_gray_u8": ("image", {**U8_1, "randaugment_ops": 5}, lambda: photos(24, 1, 16, 16, 9),
                      {"strong": (11, 12)}),
    "text_edits": ("text", {}, lambda: token_ids(32, 48, 0), {"weak": (0,), "strong": (0, 1)}),
    "text_edits_heavy": ("text", {"delete_prob": 0.9, "swap_prob": 0.5, "mask_prob": 0.5},
                         lambda: token_ids(16, 24, 1), {"strong": (2, 3)}),
    "text_backtranslation": ("text", {}, lambda: token_ids(16, 32, 2, k=3),
                             {"eval": (0,), "strong": (4,)}),
    "audio_keywords_logmel": ("audio", {"n_mels": 32, "n_fft": 512, "hop_length": 320},
                              lambda: waves(4, 16000, 0), {"eval": (0,), "weak": (0,),
                                                           "strong": (0, 1)}),
    "audio_basic_short_input": ("audio", {"n_mels": 16, "crop_seconds": 0.5},
                                lambda: waves(3, 6000, 1), {"weak": (2,), "strong": (2,)}),
    "audio_usb_waveform": ("audio", {"features": "waveform", "strong_effects": "usb",
                                     "sample_rate": 8000, "crop_seconds": 0.25,
                                     "reverb_rt60": 0.1},
                           lambda: waves(6, 3000, 2, padded=True), {"eval": (0,), "weak": (3,),
                                                                    "strong": (3, 4, 5)}),
    "audio_usb_logmel": ("audio", {"strong_effects": "usb", "crop_seconds": 0.25,
                                   "reverb_rt60": 0.1, "n_mels": 16},
                         lambda: waves(4, 5000, 3, padded=True), {"strong": (6, 7)}),
}


def _store(domain: str, spec: dict[str, Any], out: torch.Tensor) -> np.ndarray:
    """uint8 for ``mean=0, std=1`` image views (exact), int32 token ids, float32 otherwise."""
    if domain == "image" and all(m == 0.0 for m in spec["mean"]) and all(
        s == 1.0 for s in spec["std"]
    ):
        stored = (out * 255).round().to(torch.uint8)
        assert ((out * 255 - stored.float()).abs() < 1e-3).all(), "not a uint8 / 255 image"
        return stored.numpy()
    if domain == "text":
        return out.to(torch.int32).numpy()
    return out.numpy()


def compute_outputs(only: str | None = None) -> dict[str, np.ndarray]:
    """Every case's outputs, keyed ``case/view/seed``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outputs = {}
        for name, (domain, spec, make, view_seeds) in CASES.items():
            if only is not None and name != only:
                continue
            views = build_views(domain, spec)
            x = make()
            for view, seeds in view_seeds.items():
                for seed in seeds:
                    out = views[view](x, _gen(seed))
                    outputs[f"{name}/{view}/{seed}"] = _store(domain, spec, out)
        return outputs
    finally:
        torch.set_num_threads(threads)


def platform() -> dict[str, str]:
    """What bit-identical float results depend on."""
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "torchaudio": torchaudio.__version__, "numpy": np.__version__,
            "cpu": torch.backends.cpu.get_cpu_capability()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_views_match_reference_outputs(case: str) -> None:
    with np.load(REFERENCE) as saved:
        expected = {k: saved[k] for k in saved.files if k.startswith(f"{case}/")}
        recorded = json.loads(str(saved[META]))
    exact = recorded == platform()
    actual = compute_outputs(case)
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        if np.array_equal(got, want):
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bad = np.argwhere(diff.reshape(diff.shape[0], -1).max(1) > 0).ravel()
        message = (f"{key}: {int((diff > 0).sum())} values differ (max {diff.max():.3g}) "
                   f"in samples {bad.tolist()}")
        if not exact:
            pytest.skip(f"{message}; reference made on {recorded}, this is {platform()}")
        pytest.fail(message)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_augment_reference.py --write  (regenerates the reference file)")
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **compute_outputs(), **{META: json.dumps(platform())})
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1e3:.0f} kB)")
