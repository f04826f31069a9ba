"""Image views: resize, USB's weak crop-and-flip, a batched RandAugment + Cutout, and the
Semi-Aves style random-resized-crop strong view.

Order inside a view: resize -> as_rgb -> crop (and flips) -> [strong: RandAugment -> Cutout]
-> normalise; ``eval`` = resize -> as_rgb -> centre crop -> normalise. Unlike USB (PIL, one
image at a time) the whole batch is processed at once with gathers and per-sample affine
warps, planned on the host from the host-side draws so that a view on an accelerator never
waits for it. All randomness comes from the ``torch.Generator`` passed to the view; the image
stays uint8 until normalisation and pixel ops round and clip like PIL.

The spec keys (a task's ``augment``), their defaults and every difference from PIL/USB:
docs/concepts/views.md (the site's Views page).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from semibench.augment.base import PerDevice, ViewFn, constant, host_rand, to_device, to_device_all

#: op name -> (low, high) magnitude range; ops without a magnitude ignore it
OP_RANGES: dict[str, tuple[float, float]] = {
    "AutoContrast": (0.0, 1.0),
    "Brightness": (0.05, 0.95),
    "Color": (0.05, 0.95),
    "Contrast": (0.05, 0.95),
    "Equalize": (0.0, 1.0),
    "Identity": (0.0, 1.0),
    "Posterize": (4.0, 8.0),
    "Rotate": (-30.0, 30.0),
    "Sharpness": (0.05, 0.95),
    "ShearX": (-0.3, 0.3),
    "ShearY": (-0.3, 0.3),
    "Solarize": (0.0, 256.0),
    "TranslateX": (-0.3, 0.3),
    "TranslateY": (-0.3, 0.3),
}
ALL_OPS: tuple[str, ...] = tuple(OP_RANGES)
#: USB's list without colour ops (``exclude_color_aug``)
NO_COLOR_OPS: tuple[str, ...] = (
    "Brightness",
    "Equalize",
    "Identity",
    "Rotate",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
)
GEOMETRIC_OPS: frozenset[str] = frozenset(
    {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
)
#: USB's Cutout fill colour (uint8 RGB); grayscale images use its luminance
CUTOUT_FILL_RGB = (125, 123, 114)
CUTOUT_FILL_GRAY = 123

PixelOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: ITU-R 601-2 luma weights of PIL's ``convert("L")``
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_BYTES = tuple(range(256))  # the identity lookup table


# --------------------------------------------------------------------------- pixel ops
# Each takes a uint8 sub-batch [b, C, H, W] and magnitudes [b] on the same device and returns a
# uint8 sub-batch; none reads a value back to the host.


def _blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: ``degenerate + factor * (image - degenerate)``, rounded and clipped."""
    f = factor.view(-1, 1, 1, 1)
    deg = degenerate.float()
    out = deg + f * (image.float() - deg)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _luminance(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")`` as float [b, 1, H, W] (ITU-R 601-2 weights)."""
    if x.shape[1] == 1:
        return x.float()
    weights = constant(x.device, LUMA_WEIGHTS, torch.float32, (1, 3, 1, 1))
    return (x.float() * weights).sum(1, keepdim=True).round_()


def _autocontrast(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torchvision's ``autocontrast_image`` with ``masked_fill`` where it indexes by a boolean
    mask (a host sync on CUDA); the same arithmetic, so the same values."""
    image = x.to(torch.float32)
    minimum = image.amin(dim=(-2, -1), keepdim=True)
    maximum = image.amax(dim=(-2, -1), keepdim=True)
    flat = maximum == minimum
    inv_scale = maximum.sub_(minimum).mul_(1.0 / 255).masked_fill_(flat, 1.0)
    minimum.masked_fill_(flat, 0.0)
    return image.sub_(minimum).div_(inv_scale).clamp_(0, 255).to(torch.uint8)


def _equalize(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torchvision's ``equalize_image`` (PIL's lookup table, per image and channel), with the
    final ``torch.where`` (slow on uint8 CPU tensors) replaced by turning the table of images
    that stay unchanged into the identity before the one lookup."""
    flat = x.flatten(2).long()  # [b, c, HW]
    hist = flat.new_zeros((*x.shape[:2], 256), dtype=torch.int32)
    hist.scatter_add_(2, flat, hist.new_ones(1).expand_as(flat))
    cum_hist = hist.cumsum(dim=2)
    # the last non-empty bin is the first one where the cumulative histogram is maximal
    num_non_max_pixels = flat.shape[-1] - hist.gather(2, cum_hist.argmax(dim=2, keepdim=True))
    step = num_non_max_pixels.div_(255, rounding_mode="floor")
    valid = step.ne(0)
    # lut[k] = (cum_hist[k - 1] + step // 2) // step and lut[0] = 0: the exclusive cumulative
    # histogram gives both at once
    lut = cum_hist.sub_(hist).add_(step // 2)
    lut = lut.div_(step.clamp_(min=1), rounding_mode="floor").clamp_(0, 255)
    identity = constant(x.device, _BYTES, torch.int32, (256,))
    return torch.where(valid, lut, identity).to(torch.uint8).gather(2, flat).view_as(x)


def _identity(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return x


def _brightness(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``_blend`` with a black degenerate: ``0 + f * (x - 0)`` is exactly ``f * x``."""
    out = x.float().mul_(v.view(-1, 1, 1, 1))
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _color(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # the grayscale version of a grayscale image is itself
        return x
    return _blend(_luminance(x), x, v)


def _contrast(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    mean = _luminance(x).mean(dim=(1, 2, 3), keepdim=True).add_(0.5).floor_()
    return _blend(mean, x, v)


def _sharpness(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH-filtered image ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, border
    pixels unfiltered, as in PIL). The 3x3 sum is built from shifted slices rather than conv2d,
    whose CPU backend pays tens of ms to set up each new sub-batch size."""
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        return x
    f = x.float()
    rows = f[..., :-2, :] + f[..., 1:-1, :] + f[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    degenerate = f.clone()
    degenerate[..., 1:-1, 1:-1] = box.add_(f[..., 1:-1, 1:-1], alpha=4.0).div_(13.0).round_()
    return _blend(degenerate, x, v)


def _posterize(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    bits = v.floor().long().clamp(0, 8)
    mask = ((255 << (8 - bits)) & 255).to(torch.uint8).view(-1, 1, 1, 1)
    return x & mask


def _solarize(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``255 - x`` where ``x >= v``, written as ``x ^ 255`` (the same for uint8) because
    ``torch.where`` is several times slower on uint8 CPU tensors."""
    return x ^ (x.float() >= v.view(-1, 1, 1, 1)).to(torch.uint8).mul_(255)


PIXEL_OPS: dict[str, PixelOp] = {
    "AutoContrast": _autocontrast,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Equalize": _equalize,
    "Identity": _identity,
    "Posterize": _posterize,
    "Sharpness": _sharpness,
    "Solarize": _solarize,
}


# --------------------------------------------------------------------------- geometry


def _points(device: torch.device, h: int, w: int) -> torch.Tensor:
    """Homogeneous pixel coordinates ``[3, H * W]``: (col, row, 1) in row-major order."""
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    return to_device(torch.stack([cols.flatten(), rows.flatten(), torch.ones(h * w)]), device)


_POINTS = PerDevice(_points)


def _warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour affine warp with black fill: output pixel (col, row) reads the input
    at ``matrix @ (col, row, 1)``. One gather for the whole sub-batch, from the image framed by
    one black pixel, onto which every coordinate outside the image is clamped."""
    b, c, h, w = x.shape
    src = torch.matmul(matrix, _POINTS.get(x.device, h, w)).add_(0.5).floor_().long()
    if h == w:  # [b, 2, HW]
        src.clamp_(-1, w)
        sx, sy = src.unbind(1)
    else:
        sx, sy = src.unbind(1)
        sx, sy = sx.clamp(-1, w), sy.clamp(-1, h)
    index = sy.mul(w + 2).add_(sx).add_(w + 3)  # (sy + 1) * (w + 2) + (sx + 1)
    framed = F.pad(x, (1, 1, 1, 1)).flatten(2)
    out = framed.gather(2, index.unsqueeze(1).expand(b, c, h * w))
    return out.view(b, c, h, w)


def _affine_matrices(op: np.ndarray, mag: np.ndarray, names: Sequence[str], h: int,
                     w: int) -> np.ndarray:
    """Host-side affine matrices ``[b, 6]`` (row-major 2 x 3) of samples that drew geometric
    ops (codes ``op`` into ``names``, float32 magnitudes ``mag``), in float32 arithmetic with
    the same roundings as the torch code it replaces. A Rotate's ``cos``/``sin`` are torch's,
    computed on exactly the samples that drew it, in sample order, as before the views were
    batched by op: CPU ``cos``/``sin`` take a vectorised or a scalar path depending on a
    value's position in the tensor, so another grouping could move a value by one ulp."""
    matrix = np.zeros((len(op), 6), dtype=np.float32)
    matrix[:, 0] = 1.0
    matrix[:, 4] = 1.0
    for k in sorted(set(op.tolist())):
        name, sel = names[k], op == k
        v = mag[sel]
        if name == "Rotate":  # about the image centre; the range is symmetric in sign
            theta = torch.from_numpy(v * (math.pi / 180.0))
            cos, sin = theta.cos().numpy(), theta.sin().numpy()
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
            matrix[sel] = np.stack([cos, -sin, cx - cos * cx + sin * cy,
                                    sin, cos, cy - sin * cx - cos * cy], axis=1)
        elif name == "ShearX":  # PIL AFFINE (1, v, 0, 0, 1, 0): shear about the top edge
            matrix[sel, 1] = v
        elif name == "ShearY":
            matrix[sel, 3] = v
        elif name == "TranslateX":  # USB: fraction of the width
            matrix[sel, 2] = v * w
        else:  # TranslateY, fraction of the height (USB uses the width of square images)
            matrix[sel, 5] = v * h
    return matrix


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad index mapping (no edge repeat), valid for overshoots below ``size``."""
    index = np.abs(index)
    return np.where(index > size - 1, 2 * (size - 1) - index, index)


def _gather_rows_cols(x: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """``out[i, :, r, c] = x[i, :, rows[i, r], cols[i, c]]`` for host-side ``rows`` [b, H'] and
    ``cols`` [b, W']: one transfer of the indices and one gather."""
    b, c, h, w = x.shape
    out_h, out_w = rows.shape[1], cols.shape[1]
    r, q = to_device_all([torch.from_numpy(rows), torch.from_numpy(cols)], x.device)
    index = (r.unsqueeze(2) * w + q.unsqueeze(1)).view(b, 1, out_h * out_w)
    out = x.flatten(2).gather(2, index.expand(b, c, out_h * out_w))
    return out.view(b, c, out_h, out_w)


# --------------------------------------------------------------------------- RandAugment plan

_SKIP, _GEOMETRIC, _PIXEL = 0, 1, 2


@dataclass(frozen=True)
class _OpTable:
    """Per op list: magnitude ranges and the sort key that groups a step's samples (geometric
    ops first, together, then each pixel op, then Identity)."""

    names: tuple[str, ...]
    low: torch.Tensor
    span: torch.Tensor
    key: np.ndarray  # op code -> sort key
    kinds: tuple[int, ...]  # sort key -> _GEOMETRIC, _PIXEL or _SKIP
    key_op: tuple[int, ...]  # sort key -> the op code of a pixel op's group


@lru_cache(maxsize=16)
def _op_table(names: tuple[str, ...]) -> _OpTable:
    low = torch.tensor([OP_RANGES[o][0] for o in names])
    high = torch.tensor([OP_RANGES[o][1] for o in names])
    keys, kinds, key_op = [], [_GEOMETRIC], [-1]
    for k, name in enumerate(names):
        if name in GEOMETRIC_OPS:
            keys.append(0)
        elif name == "Identity":
            keys.append(-1)
        else:
            keys.append(len(kinds))
            kinds.append(_PIXEL)
            key_op.append(k)
    skip = len(kinds)
    keys = [skip if key < 0 else key for key in keys]
    return _OpTable(names, low, high - low, np.array(keys, dtype=np.int64),
                    (*kinds, _SKIP), (*key_op, -1))


@dataclass
class _Step:
    """One RandAugment step, host side: how to reorder the batch, and its groups."""

    gather: np.ndarray | None  # positions in the current order; None: keep it
    geometric: int  # the first ``geometric`` samples (after the gather) are warped
    groups: list[tuple[int, int, int]]  # (op code, start, end) of each pixel op's slice


def _plan(ops: np.ndarray, mags: np.ndarray, table: _OpTable, h: int, w: int
          ) -> tuple[list[_Step], np.ndarray | None, np.ndarray, list[np.ndarray]]:
    """Host-side plan of a RandAugment call: per step the gather that makes each op's samples
    contiguous (a stable sort, so each group keeps ascending sample order), the groups, the
    reordered magnitudes ``[n, b]`` and the affine matrices of the geometric group; and the
    gather that restores the input order at the end. numpy, not torch: these are a few dozen
    operations on a few hundred numbers, where torch's per-call cost dominates."""
    b, n = ops.shape
    identity = np.arange(b)
    keys = table.key[ops]  # [b, n]
    orders = np.argsort(keys, axis=0, kind="stable")
    sorted_mags = np.take_along_axis(mags, orders, axis=0).T.copy()
    steps, matrices = [], []
    inverse = identity  # inverse[sample] = its position in the current order
    for s in range(n):
        order = orders[:, s]
        gather = inverse[order]
        counts = np.bincount(keys[:, s], minlength=len(table.kinds)).tolist()
        groups, start = [], counts[0]
        for key in range(1, len(counts)):
            if counts[key] and table.kinds[key] == _PIXEL:
                groups.append((table.key_op[key], start, start + counts[key]))
            start += counts[key]
        if counts[0]:
            rows = order[: counts[0]]  # ascending: the stable sort keeps sample order
            matrices.append(_affine_matrices(ops[rows, s], mags[rows, s], table.names, h, w))
        steps.append(_Step(None if np.array_equal(gather, identity) else gather, counts[0],
                           groups))
        inverse = np.empty_like(order)
        inverse[order] = identity
    restore = None if np.array_equal(inverse, identity) else inverse
    return steps, restore, sorted_mags, matrices


# --------------------------------------------------------------------------- views

STRONG_CROPS = ("weak", "random_resized")
#: torchvision / timm RandomResizedCrop defaults (USB's Semi-Aves strong view)
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10


class ImageViews:
    """Holds the spec of the image views; ``eval``/``weak``/``strong`` are the ``ViewFn``s.

    ``ops`` (the RandAugment op list) and ``pixel_ops`` (name -> function) are attributes so
    tests and ablations can inspect or replace them. The spec keys are described in the module
    docstring. The views keep no state between calls (the per-device constants are built once,
    under a lock), so two threads may call them at once.
    """

    def __init__(
        self,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        resize: int | None = None,
        crop_size: int | None = None,
        crop_ratio: float = 0.875,
        hflip: bool = True,
        vflip: bool = False,
        strong_crop: str = "weak",
        randaugment_ops: int = 3,
        exclude_color_aug: bool = False,
        cutout: bool = True,
        as_rgb: bool = False,
    ) -> None:
        if not 0.0 < crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
        if randaugment_ops < 0:
            raise ValueError(f"randaugment_ops must be >= 0, got {randaugment_ops}")
        for key, value in (("resize", resize), ("crop_size", crop_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{key} must be a positive integer or None, got {value!r}")
        if resize is not None and crop_size is not None and crop_size > resize:
            raise ValueError(f"crop_size {crop_size} is larger than resize {resize}")
        if strong_crop not in STRONG_CROPS:
            raise ValueError(f"strong_crop={strong_crop!r}; allowed: {', '.join(STRONG_CROPS)}")
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if self.mean.numel() != self.std.numel() or (self.std <= 0).any():
            raise ValueError(f"mean {mean} and std {std} must have equal lengths, std > 0")
        if as_rgb and self.mean.numel() not in (1, 3):
            raise ValueError(f"as_rgb needs 1 or 3 mean/std values, got {self.mean.numel()}")
        self.resize = resize
        self.crop_size = crop_size
        self.crop_ratio = crop_ratio
        self.hflip = hflip
        self.vflip = vflip
        self.strong_crop = strong_crop
        self.randaugment_ops = randaugment_ops
        self.cutout = cutout
        self.as_rgb = as_rgb
        self.ops: tuple[str, ...] = NO_COLOR_OPS if exclude_color_aug else ALL_OPS
        self.pixel_ops: dict[str, PixelOp] = dict(PIXEL_OPS)
        # (x / 255 - mean) / std as x * scale - shift, computed once on the host (float32)
        self._scale = tuple((1.0 / (255.0 * self.std)).tolist())
        self._shift = tuple((self.mean / self.std).tolist())

    # ---------------------------------------------------------------- helpers

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check the stored batch, resize it and expand grayscale to RGB if asked."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"expected uint8 [B, C, H, W] with C in (1, 3), got {x.dtype} {tuple(x.shape)}"
            )
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = TF.resize_image(x, [self.resize, self.resize],
                                interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        if self.as_rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.mean.numel() not in (1, x.shape[1]):
            raise ValueError(f"{self.mean.numel()} mean values for {x.shape[1]} channels")
        out_h, out_w = self._out_size(x)
        if out_h > x.shape[-2] or out_w > x.shape[-1]:
            raise ValueError(f"crop_size {self.crop_size} is larger than the image "
                             f"{tuple(x.shape[-2:])}")
        return x

    def _out_size(self, x: torch.Tensor) -> tuple[int, int]:
        """(height, width) of the view's output: ``crop_size`` squared, else the input's."""
        if self.crop_size is not None:
            return self.crop_size, self.crop_size
        return int(x.shape[-2]), int(x.shape[-1])

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x / 255 - mean) / std as one multiply-add per channel."""
        shape = (1, len(self._scale), 1, 1)
        scale = constant(x.device, self._scale, torch.float32, shape)
        shift = constant(x.device, self._shift, torch.float32, shape)
        return x.to(torch.float32, copy=True).mul_(scale).sub_(shift)

    def _crop_flip(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """USB's RandomCrop(size, padding=int(size * (1 - crop_ratio)), reflect) then flips,
        as one gather of source rows and columns computed on the host."""
        b, c, h, w = x.shape
        out_h, out_w = self._out_size(x)
        pad_h, pad_w = int(out_h * (1 - self.crop_ratio)), int(out_w * (1 - self.crop_ratio))
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"crop_ratio {self.crop_ratio} pads more than the image size")
        u = host_rand((b, 4), gen).numpy()
        # torchvision: top ~ randint(0, h + 2 * pad - size + 1) in the padded image
        span_h, span_w = h + 2 * pad_h - out_h + 1, w + 2 * pad_w - out_w + 1
        dy = np.minimum((u[:, 0] * span_h).astype(np.int64), span_h - 1) - pad_h
        dx = np.minimum((u[:, 1] * span_w).astype(np.int64), span_w - 1) - pad_w
        rows = np.broadcast_to(np.arange(out_h), (b, out_h))
        cols = np.broadcast_to(np.arange(out_w), (b, out_w))
        if self.vflip:
            rows = np.where((u[:, 2] < 0.5)[:, None], out_h - 1 - rows, rows)
        if self.hflip:
            cols = np.where((u[:, 3] < 0.5)[:, None], out_w - 1 - cols, cols)
        rows = _reflect(rows + dy[:, None], h)
        cols = _reflect(cols + dx[:, None], w)
        return _gather_rows_cols(x, rows, cols)

    def _random_resized_crop(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """torchvision's RandomResizedCrop (10 attempts, then its centre fallback) followed by
        the flips, resampled bilinearly to the output size in one ``grid_sample``; the boxes
        and the sampling grid's coordinates are computed on the host."""
        b, c, h, w = x.shape
        out_h, out_w = self._out_size(x)
        u = host_rand((b, RRC_ATTEMPTS, 4), gen)
        area = float(h * w)
        target = area * (RRC_SCALE[0] + (RRC_SCALE[1] - RRC_SCALE[0]) * u[..., 0])
        log_lo, log_hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
        tw = torch.sqrt(target * ratio).round()
        th = torch.sqrt(target / ratio).round()
        ok = (tw > 0) & (tw <= w) & (th > 0) & (th <= h)
        first = ok.int().argmax(1, keepdim=True)  # the first successful attempt

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t.gather(1, first).squeeze(1)

        tw, th, ui, uj = pick(tw), pick(th), pick(u[..., 2]), pick(u[..., 3])
        top = (ui * (h - th + 1)).floor().clamp(max=h - th)
        left = (uj * (w - tw + 1)).floor().clamp(max=w - tw)
        # fallback when no attempt fits: the whole image, clamped to the ratio range, centred
        in_ratio = w / h
        if in_ratio < RRC_RATIO[0]:
            fw, fh = w, int(round(w / RRC_RATIO[0]))
        elif in_ratio > RRC_RATIO[1]:
            fw, fh = int(round(h * RRC_RATIO[1])), h
        else:
            fw, fh = w, h
        failed = ~ok.any(1)
        tw = torch.where(failed, torch.full_like(tw, fw), tw)
        th = torch.where(failed, torch.full_like(th, fh), th)
        top = torch.where(failed, torch.full_like(top, (h - fh) // 2), top)
        left = torch.where(failed, torch.full_like(left, (w - fw) // 2), left)
        flips = host_rand((b, 2), gen)
        fy = ((torch.arange(out_h, dtype=torch.float32) + 0.5) / out_h).expand(b, -1)
        fx = ((torch.arange(out_w, dtype=torch.float32) + 0.5) / out_w).expand(b, -1)
        if self.vflip:
            fy = torch.where((flips[:, 0] < 0.5).unsqueeze(1), 1.0 - fy, fy)
        if self.hflip:
            fx = torch.where((flips[:, 1] < 0.5).unsqueeze(1), 1.0 - fx, fx)
        # pixel-centre coordinates inside the box, normalised for align_corners=False
        gx = (left.unsqueeze(1) + fx * tw.unsqueeze(1)) / w * 2.0 - 1.0  # [b, out_w]
        gy = (top.unsqueeze(1) + fy * th.unsqueeze(1)) / h * 2.0 - 1.0  # [b, out_h]
        gx, gy = to_device_all([gx, gy], x.device)
        grid = torch.stack([gx.unsqueeze(1).expand(b, out_h, out_w),
                            gy.unsqueeze(2).expand(b, out_h, out_w)], dim=-1)
        out = torch.nn.functional.grid_sample(x.float(), grid, mode="bilinear",
                                              padding_mode="border", align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def _centre_crop(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's CenterCrop: offsets ``int(round((H - size) / 2))``."""
        h, w = x.shape[-2:]
        out_h, out_w = self._out_size(x)
        if (out_h, out_w) == (h, w):
            return x
        top, left = int(round((h - out_h) / 2.0)), int(round((w - out_w) / 2.0))
        return x[..., top : top + out_h, left : left + out_w]

    def _cutout(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A square of side U(0, 0.5) * width at a uniform centre, clipped at the borders and
        filled with USB's grey; the boxes are computed on the host."""
        b, c, h, w = x.shape
        u = host_rand((b, 3), gen).numpy()
        side = u[:, 0] * 0.5 * w  # float32 throughout, as torch computed it
        x0 = np.floor(np.maximum(u[:, 1] * w - side / 2, 0))
        y0 = np.floor(np.maximum(u[:, 2] * h - side / 2, 0))
        cols, rows = np.arange(w), np.arange(h)
        in_x = (cols >= x0[:, None]) & (cols < (x0 + side)[:, None])  # [b, W]
        in_y = (rows >= y0[:, None]) & (rows < (y0 + side)[:, None])  # [b, H]
        in_x, in_y = to_device_all([torch.from_numpy(in_x), torch.from_numpy(in_y)], x.device)
        mask = (in_y.view(b, 1, h, 1) & in_x.view(b, 1, 1, w)).to(torch.uint8)
        fill = constant(x.device, CUTOUT_FILL_RGB if c == 3 else (CUTOUT_FILL_GRAY,),
                        torch.uint8, (1, c, 1, 1))
        # x * (1 - mask) + fill * mask: exact in uint8, and ~10x faster than torch.where
        return x.mul(1 - mask).add_(fill * mask)

    def randaugment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Apply ``randaugment_ops`` ops per sample (uint8 in, uint8 out), in drawn order.

        The host plans every step from the draws (:func:`_plan`); the device then does per
        step one gather, one warp for the geometric group and one call per pixel op present,
        each on a contiguous slice, and one gather at the end."""
        b, n = x.shape[0], self.randaugment_ops
        if n == 0 or b == 0:
            return x
        ops = torch.randint(len(self.ops), (b, n), generator=gen, device=gen.device).cpu()
        u = host_rand((b, n), gen)
        table = _op_table(tuple(self.ops))
        mags = table.low[ops] + table.span[ops] * u  # float32, on the host
        h, w = x.shape[-2:]
        steps, restore, sorted_mags, matrices = _plan(ops.numpy(), mags.numpy(), table, h, w)
        # everything the device needs, in (at most) two transfers
        gathers = [st.gather for st in steps if st.gather is not None]
        if restore is not None:
            gathers.append(restore)
        index = to_device(torch.from_numpy(np.stack(gathers)), x.device) if gathers else None
        floats = np.concatenate([sorted_mags.ravel(), *(m.ravel() for m in matrices)])
        floats = to_device(torch.from_numpy(floats), x.device)
        offset, g, fresh = n * b, 0, False
        for s, step in enumerate(steps):
            if step.gather is not None:
                x, fresh = x.index_select(0, index[g]), True
                g += 1
            elif not fresh:
                x, fresh = x.clone(), True
            if step.geometric:
                k = step.geometric
                part = x.narrow(0, 0, k)
                part.copy_(_warp(part, floats.narrow(0, offset, 6 * k).view(k, 2, 3)))
                offset += 6 * k
            for code, start, end in step.groups:
                part = x.narrow(0, start, end - start)
                mag = floats.narrow(0, s * b + start, end - start)
                out = self.pixel_ops[self.ops[code]](part, mag)
                if out is not part:
                    part.copy_(out)
        if restore is not None:
            x = x.index_select(0, index[g])
        return x

    # ---------------------------------------------------------------- views

    def eval(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Resize and centre crop only (USB evaluates small images uncropped)."""
        return self._normalise(self._centre_crop(self._prepare(x)))

    def weak(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self._normalise(self._crop_flip(self._prepare(x), gen))

    def strong(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = self._prepare(x)
        if self.strong_crop == "random_resized":
            x = self._random_resized_crop(x, gen)
        else:
            x = self._crop_flip(x, gen)
        x = self.randaugment(x, gen)
        if self.cutout:
            x = self._cutout(x, gen)
        return self._normalise(x)


def build_image_views(**spec: object) -> dict[str, ViewFn]:
    """Build the image views from a task's ``augment`` spec (keys: see the module docstring)."""
    views = ImageViews(**spec)  # type: ignore[arg-type]
    return {"eval": views.eval, "weak": views.weak, "strong": views.strong}
