"""Tests of the batched image views (normalisation, weak crop/flip, RandAugment + Cutout)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semibench.augment import build_views
from semibench.augment.image import (
    ALL_OPS,
    GEOMETRIC_OPS,
    NO_COLOR_OPS,
    OP_RANGES,
    ImageViews,
    _affine_matrices,
    _warp,
)

MEAN3, STD3 = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
COLOUR_OPS = {"AutoContrast", "Color", "Contrast", "Posterize", "Solarize"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The views run on one CPU thread in training; this also keeps timings stable under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=gen(seed), dtype=torch.uint8)


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (4, 3, 32, 32), (3, 3, 20, 24)])
@pytest.mark.parametrize("view", ["eval", "weak", "strong"])
def test_shapes_and_dtype(shape: tuple[int, ...], view: str) -> None:
    c = shape[1]
    views = build_views("image", {"mean": MEAN3[:c], "std": STD3[:c]})
    out = views[view](images(shape), gen())
    assert out.shape == shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_eval_normalises_constant_image() -> None:
    views = build_views("image", {"mean": MEAN3, "std": STD3})
    x = torch.full((2, 3, 8, 8), 200, dtype=torch.uint8)
    out = views["eval"](x, gen())
    expected = (200 / 255 - torch.tensor(MEAN3)) / torch.tensor(STD3)
    torch.testing.assert_close(out[0, :, 3, 5], expected)
    torch.testing.assert_close(out, expected.view(1, 3, 1, 1).expand_as(out))


def test_eval_is_deterministic() -> None:
    views = build_views("image", {"mean": (0.5,), "std": (0.5,)})
    x = images((6, 1, 28, 28))
    assert torch.equal(views["eval"](x, gen(1)), views["eval"](x, gen(2)))


@pytest.mark.parametrize("view", ["weak", "strong"])
def test_reproducible_per_generator(view: str) -> None:
    views = build_views("image", {"mean": MEAN3, "std": STD3})
    x = images((16, 3, 32, 32))
    a = views[view](x, gen(7))
    b = views[view](x, gen(7))
    c = views[view](x, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_global_rng_is_not_used() -> None:
    views = build_views("image", {"mean": MEAN3, "std": STD3})
    x = images((8, 3, 32, 32))
    torch.manual_seed(0)
    a = views["strong"](x, gen(3))
    torch.manual_seed(1)
    b = views["strong"](x, gen(3))
    assert torch.equal(a, b)


def test_weak_flip_only_keeps_pixel_multiset() -> None:
    views = ImageViews(mean=(0.0,), std=(1.0,), crop_ratio=1.0, hflip=True, vflip=True)
    x = images((32, 1, 10, 10))
    out = (views.weak(x, gen()) * 255).round().to(torch.uint8)
    assert not torch.equal(out, x)  # some samples were flipped
    for a, b in zip(out, x, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
        flips = [b, b.flip(-1), b.flip(-2), b.flip(-1).flip(-2)]
        assert any(torch.equal(a, f) for f in flips)


def test_weak_crop_is_a_shift_of_the_reflect_padded_image() -> None:
    views = ImageViews(mean=(0.0,), std=(1.0,), crop_ratio=0.875, hflip=False)
    x = images((16, 1, 32, 32))
    out = (views.weak(x, gen()) * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for o, p in zip(out, padded, strict=True):
        crops = [p[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
        assert any(torch.equal(o, c) for c in crops)


def test_strong_changes_images() -> None:
    views = build_views("image", {"mean": (0.5,), "std": (0.5,), "crop_ratio": 1.0, "hflip": False})
    x = images((64, 1, 28, 28))
    changed = (views["strong"](x, gen()) != views["eval"](x, gen())).flatten(1).any(1)
    assert changed.float().mean() > 0.9


def test_identity_only_strong_equals_eval() -> None:
    views = ImageViews(mean=MEAN3, std=STD3, crop_ratio=1.0, hflip=False, cutout=False)
    views.ops = ("Identity",)
    x = images((8, 3, 16, 16))
    assert torch.equal(views.strong(x, gen()), views.eval(x))


def test_rotate_fills_corners_black() -> None:
    views = ImageViews(
        mean=(0.0,), std=(1.0,), crop_ratio=1.0, hflip=False, cutout=False, randaugment_ops=1
    )
    views.ops = ("Rotate",)
    x = torch.full((64, 1, 32, 32), 255, dtype=torch.uint8)
    out = views.strong(x, gen())
    corner_black = out[:, 0, 0, 0] == 0
    assert corner_black.float().mean() > 0.5  # most |angle| are large enough to expose it
    assert (out[:, 0, 16, 16] == 1.0).all()  # the centre stays


def test_solarize_and_posterize_values() -> None:
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(32, 1, 16, 16)
    views = ImageViews(
        mean=(0.0,), std=(1.0,), crop_ratio=1.0, hflip=False, cutout=False, randaugment_ops=1
    )
    views.ops = ("Posterize",)
    out = (views.strong(x, gen()) * 255).round().to(torch.uint8)
    masks = [(255 << (8 - bits)) & 255 for bits in range(4, 9)]
    for o, xi in zip(out, x, strict=True):
        assert any(torch.equal(o, xi & m) for m in masks)  # keeps 4 to 8 high bits
    assert not torch.equal(out, x)
    views.ops = ("Solarize",)
    out = (views.strong(x, gen()) * 255).round().long()
    xs = x.long()
    assert ((out == xs) | (out == 255 - xs)).all()
    assert (out != xs).any()


def _cutout_mask(out: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    return (out == fill.view(1, -1, 1, 1)).all(1)


@pytest.mark.parametrize("channels", [1, 3])
def test_cutout_leaves_fill_coloured_square(channels: int) -> None:
    views = ImageViews(mean=(0.0,) * channels, std=(1.0,) * channels, randaugment_ops=0)
    x = torch.zeros((64, channels, 32, 32), dtype=torch.uint8)
    out = (views.strong(x, gen()) * 255).round()
    fill_values = (125, 123, 114) if channels == 3 else (123,)  # USB's grey; its luminance
    fill = torch.tensor(fill_values, dtype=torch.float32)
    mask = _cutout_mask(out, fill)
    assert ((out == 0).all(1) | mask).all()  # only black or fill pixels
    nonempty = 0
    for m in mask:
        if not m.any():
            continue
        nonempty += 1
        rows = m.any(1).nonzero().squeeze(1)
        cols = m.any(0).nonzero().squeeze(1)
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        assert m[r0 : r1 + 1, c0 : c1 + 1].all()  # a solid rectangle
        assert m.sum() == (r1 - r0 + 1) * (c1 - c0 + 1)
        assert max(r1 - r0, c1 - c0) + 1 <= 16  # side <= 0.5 * width
        if r0 > 0 and c0 > 0 and r1 < 31 and c1 < 31:  # unclipped: a square
            assert r1 - r0 == c1 - c0
    assert nonempty > 40


def test_no_cutout_when_disabled() -> None:
    views = ImageViews(mean=(0.0,), std=(1.0,), randaugment_ops=0, cutout=False)
    x = torch.zeros((32, 1, 16, 16), dtype=torch.uint8)
    assert (views.strong(x, gen()) == 0).all()


def test_op_lists() -> None:
    assert set(ALL_OPS) == set(NO_COLOR_OPS) | COLOUR_OPS
    assert not COLOUR_OPS & set(NO_COLOR_OPS)
    assert ImageViews(mean=(0.5,), std=(0.5,), exclude_color_aug=True).ops == NO_COLOR_OPS
    assert ImageViews(mean=(0.5,), std=(0.5,)).ops == ALL_OPS


@pytest.mark.parametrize("exclude", [True, False])
def test_exclude_color_aug_never_calls_colour_ops(exclude: bool) -> None:
    views = ImageViews(mean=MEAN3, std=STD3, exclude_color_aug=exclude)
    called: set[str] = set()

    def recorder(name: str):
        original = views.pixel_ops[name]

        def op(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            called.add(name)
            return original(x, v)

        return op

    for name in list(views.pixel_ops):
        views.pixel_ops[name] = recorder(name)
    views.strong(images((64, 3, 16, 16)), gen())
    if exclude:
        assert not called & COLOUR_OPS
        assert called  # Brightness / Equalize / Sharpness still run
    else:
        assert called & COLOUR_OPS


def test_rejects_bad_input() -> None:
    views = ImageViews(mean=MEAN3, std=STD3)
    with pytest.raises(ValueError):
        views.eval(torch.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError):
        views.eval(torch.zeros((2, 1, 8, 8), dtype=torch.uint8).expand(2, 2, 8, 8))
    with pytest.raises(TypeError):
        build_views("image", {"mean": MEAN3, "std": STD3, "crop_ration": 0.9})


# --------------------------------------------------------------------------- resize, crops, RGB


def _pil_resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """USB's Resize on PIL images (bilinear), the reference for the batched resize."""
    from PIL import Image

    out = []
    for image in x:
        array = image.permute(1, 2, 0).squeeze(-1).numpy()
        resized = Image.fromarray(array).resize((side, side), Image.BILINEAR)
        out.append(torch.from_numpy(np.asarray(resized).copy()).reshape(side, side, -1))
    return torch.stack(out).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("channels", "src", "dst"), [(1, 28, 32), (3, 64, 32), (3, 20, 20)])
def test_resize_matches_pil_bilinear(channels: int, src: int, dst: int) -> None:
    views = ImageViews(mean=(0.0,) * channels, std=(1.0,) * channels, resize=dst)
    x = images((4, channels, src, src), seed=3)
    out = (views.eval(x) * 255).round().to(torch.uint8)
    assert out.shape == (4, channels, dst, dst)
    assert torch.equal(out, _pil_resize(x, dst))


def test_as_rgb_repeats_the_grey_channel_and_uses_the_rgb_fill() -> None:
    views = ImageViews(mean=(0.0,) * 3, std=(1.0,) * 3, resize=32, as_rgb=True,
                       randaugment_ops=0, crop_ratio=0.95, vflip=True)
    x = images((16, 1, 28, 28), seed=4)
    for out in (views.eval(x), views.weak(x, gen())):
        assert out.shape == (16, 3, 32, 32)
        assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    strong = (views.strong(torch.zeros((32, 1, 28, 28), dtype=torch.uint8), gen()) * 255).round()
    filled = (strong == torch.tensor([125.0, 123.0, 114.0]).view(1, 3, 1, 1)).all(1)
    assert filled.any()  # USB converts to RGB first, so Cutout paints its RGB grey


def test_weak_crop_without_padding_is_a_window_of_the_resized_image() -> None:
    """Semi-Aves' weak view: RandomCrop(224) of the 256 image, no padding, then HFlip."""
    views = ImageViews(mean=(0.0,), std=(1.0,), resize=40, crop_size=32, crop_ratio=1.0,
                       hflip=False)
    x = images((24, 1, 40, 40), seed=5)
    out = (views.weak(x, gen()) * 255).round().to(torch.uint8)
    assert out.shape == (24, 1, 32, 32)
    offsets = set()
    for o, xi in zip(out, x, strict=True):
        hits = [(i, j) for i in range(9) for j in range(9)
                if torch.equal(o, xi[:, i : i + 32, j : j + 32])]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 10  # the offsets vary over [0, 8] x [0, 8]


def test_eval_centre_crop_matches_torchvision() -> None:
    from torchvision.transforms.v2 import functional as TF2

    views = ImageViews(mean=(0.0,) * 3, std=(1.0,) * 3, resize=37, crop_size=30)
    x = images((3, 3, 37, 37), seed=6)
    out = (views.eval(x) * 255).round().to(torch.uint8)
    assert torch.equal(out, TF2.center_crop(x, [30, 30]))


def _ramp(b: int, h: int, w: int) -> torch.Tensor:
    """An image whose value is its column index (0..w-1), the same in every row."""
    return torch.arange(w, dtype=torch.uint8).view(1, 1, 1, w).expand(b, 1, h, w).contiguous()


@pytest.mark.parametrize("hflip", [False, True])
def test_random_resized_crop_boxes(hflip: bool) -> None:
    views = ImageViews(mean=(0.0,), std=(1.0,), resize=64, crop_size=56, crop_ratio=1.0,
                       hflip=hflip, strong_crop="random_resized", randaugment_ops=0,
                       cutout=False)
    x = _ramp(64, 64, 64)
    out = (views.strong(x, gen(2)) * 255).round()
    assert out.shape == (64, 1, 56, 56)
    # a column ramp stays a column ramp (up to float ties at .5 between rows)
    assert ((out - out[:, :, :1]).abs() <= 1).all()
    row = out[:, 0].mean(1)
    rising = (row.diff(dim=1) >= -0.5).all(1)
    falling = (row.diff(dim=1) <= 0.5).all(1)
    assert (rising | falling).all()
    if hflip:
        assert rising.any() and (falling & ~rising).any()
    else:
        assert rising.all()
    width = (row.max(1).values - row.min(1).values) + 1  # columns the box spans, about
    # scale in [0.08, 1] and ratio in [3/4, 4/3]: the box is 0.24 to 1 of the side
    assert (width >= 0.24 * 64 - 2).all() and (width <= 64).all()
    assert width.std() > 5  # the boxes vary


def test_random_resized_crop_reproducible_and_constant_images_stay_constant() -> None:
    views = ImageViews(mean=(0.0,) * 3, std=(1.0,) * 3, resize=48, crop_size=40, crop_ratio=1.0,
                       strong_crop="random_resized", randaugment_ops=0, cutout=False)
    x = torch.full((8, 3, 48, 48), 77, dtype=torch.uint8)
    assert ((views.strong(x, gen()) * 255).round() == 77).all()
    y = images((8, 3, 48, 48), seed=7)
    assert torch.equal(views.strong(y, gen(5)), views.strong(y, gen(5)))
    assert not torch.equal(views.strong(y, gen(5)), views.strong(y, gen(6)))


def test_semi_aves_style_views_have_one_output_size() -> None:
    """use_cat concatenates the views, so weak, strong and eval must agree on 224 px."""
    spec = {"mean": MEAN3, "std": STD3, "resize": 256, "crop_size": 224, "crop_ratio": 1.0,
            "strong_crop": "random_resized"}
    views = build_views("image", spec)
    x = images((2, 3, 256, 256))
    for view in ("eval", "weak", "strong"):
        assert views[view](x, gen()).shape == (2, 3, 224, 224)


def test_rejects_bad_crop_specs() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        ImageViews(mean=MEAN3, std=STD3, resize=32, crop_size=40)
    with pytest.raises(ValueError, match="strong_crop"):
        ImageViews(mean=MEAN3, std=STD3, strong_crop="center")
    with pytest.raises(ValueError, match="resize"):
        ImageViews(mean=MEAN3, std=STD3, resize=0)
    with pytest.raises(ValueError, match="larger than the image"):
        ImageViews(mean=MEAN3, std=STD3, crop_size=40).eval(images((1, 3, 32, 32)))


# --------------------------------------------------------------------------- batching by op


def _torch_affine(op: torch.Tensor, mag: torch.Tensor, names: tuple[str, ...], h: int,
                  w: int) -> torch.Tensor:
    """The affine matrices as the views computed them before they were batched by op (torch,
    one masked sub-batch per op); the reference for the host-side numpy version."""
    matrix = torch.zeros(op.shape[0], 2, 3)
    matrix[:, 0, 0] = 1.0
    matrix[:, 1, 1] = 1.0
    for k, name in enumerate(names):
        sel = op == k
        if name not in GEOMETRIC_OPS or not sel.any():
            continue
        v, m = mag[sel], matrix[sel]
        if name == "Rotate":
            theta = v * (math.pi / 180.0)
            cos, sin = theta.cos(), theta.sin()
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
            m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = cos, -sin, cx - cos * cx + sin * cy
            m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = sin, cos, cy - sin * cx - cos * cy
        elif name == "ShearX":
            m[:, 0, 1] = v
        elif name == "ShearY":
            m[:, 1, 0] = v
        elif name == "TranslateX":
            m[:, 0, 2] = v * w
        else:
            m[:, 1, 2] = v * h
        matrix[sel] = m
    return matrix.view(-1, 6)


def test_host_affine_matrices_equal_the_torch_formulas_bit_for_bit() -> None:
    g = gen(3)
    geometric = torch.tensor([k for k, n in enumerate(ALL_OPS) if n in GEOMETRIC_OPS])
    low = torch.tensor([OP_RANGES[o][0] for o in ALL_OPS])
    high = torch.tensor([OP_RANGES[o][1] for o in ALL_OPS])
    for b in (1, 2, 7, 17, 64, 200):
        op = geometric[torch.randint(len(geometric), (b,), generator=g)]
        mag = low[op] + (high - low)[op] * torch.rand(b, generator=g)
        for h, w in ((32, 32), (20, 24), (224, 224)):
            host = _affine_matrices(op.numpy(), mag.numpy(), ALL_OPS, h, w)
            assert torch.equal(torch.from_numpy(host), _torch_affine(op, mag, ALL_OPS, h, w))


@pytest.mark.parametrize("ops", [ALL_OPS, ("Identity", "Solarize", "Equalize", "Contrast")])
def test_randaugment_batched_by_op_equals_one_sample_at_a_time(ops: tuple[str, ...]) -> None:
    """Reordering the batch by op and back gives each sample exactly its own ops, in order."""
    views = ImageViews(mean=(0.0,) * 3, std=(1.0,) * 3, randaugment_ops=3)
    views.ops = ops
    x = images((24, 3, 16, 16), seed=2)
    out = views.randaugment(x, gen(4))
    g = gen(4)
    codes = torch.randint(len(ops), (24, 3), generator=g)
    low = torch.tensor([OP_RANGES[o][0] for o in ops])
    high = torch.tensor([OP_RANGES[o][1] for o in ops])
    mags = low[codes] + (high - low)[codes] * torch.rand((24, 3), generator=g)
    for i in range(24):
        one = x[i : i + 1]
        for step in range(3):
            name, v = ops[int(codes[i, step])], mags[i : i + 1, step]
            if name in GEOMETRIC_OPS:
                matrix = _affine_matrices(codes[i : i + 1, step].numpy(), v.numpy(), ops, 16, 16)
                one = _warp(one, torch.from_numpy(matrix).view(1, 2, 3))
            else:
                one = views.pixel_ops[name](one, v)
        assert torch.equal(out[i], one[0]), i
