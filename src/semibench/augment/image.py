"""Image views: normalisation, USB's weak flip-and-crop and a batched RandAugment + Cutout.

The strong view follows USB's RandAugment: every sample draws ``randaugment_ops`` operations
with replacement from the op list, each with a magnitude uniform in the op's range, applies them
in the drawn order and always ends with a Cutout. Unlike USB (PIL, one image at a time) the
whole batch is processed at once, because the views run on the CPU every training step:

* the weak crop (reflect padding) and flips are one integer gather for the whole batch;
* at each RandAugment step the samples that drew a geometric op (Rotate, Shear, Translate) are
  warped together by one gather with a per-sample affine matrix (nearest neighbour and black
  fill, as PIL does by default);
* each pixel op runs once per step on the sub-batch that drew it.

The image stays uint8 until normalisation so that Posterize, Solarize and Equalize keep their
integer meaning, and pixel ops round and clip like PIL after every step.

Grayscale (1-channel) inputs: Color blends with the grayscale image, which is the image itself,
so Color is the identity there; Contrast uses the image mean; the Cutout fill is the luminance
of USB's fill colour (123).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from semibench.augment import ViewFn

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


# --------------------------------------------------------------------------- pixel ops
# Each takes a uint8 sub-batch [b, C, H, W] and magnitudes [b] and returns a uint8 sub-batch.


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
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round_()


def _autocontrast(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return TF.autocontrast_image(x)


def _equalize(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return TF.equalize_image(x)


def _identity(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return x


def _brightness(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, v)


def _color(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # the grayscale version of a grayscale image is itself
        return x
    return _blend(_luminance(x).expand_as(x), x, v)


def _contrast(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    mean = _luminance(x).mean(dim=(1, 2, 3), keepdim=True).add_(0.5).floor_()
    return _blend(mean.expand_as(x), x, v)


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
    return torch.where(x.float() >= v.view(-1, 1, 1, 1), 255 - x, x)


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


def _warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour affine warp with black fill: output pixel (col, row) reads the input
    at ``matrix @ (col, row, 1)``. One gather for the whole sub-batch."""
    b, c, h, w = x.shape
    rows, cols = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float32),
        torch.arange(w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    pts = torch.stack([cols.flatten(), rows.flatten(), torch.ones(h * w, device=x.device)])
    src = torch.matmul(matrix, pts).add_(0.5).floor_().long()  # [b, 2, HW]
    sx, sy = src[:, 0], src[:, 1]
    valid = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    index = sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)
    out = x.flatten(2).gather(2, index.unsqueeze(1).expand(b, c, h * w))
    out.masked_fill_(~valid.unsqueeze(1), 0)
    return out.view(b, c, h, w)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad index mapping (no edge repeat), valid for overshoots below ``size``."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


# --------------------------------------------------------------------------- views


class ImageViews:
    """Holds the spec of the image views; ``eval``/``weak``/``strong`` are the ``ViewFn``s.

    ``ops`` (the RandAugment op list) and ``pixel_ops`` (name -> function) are attributes so
    tests and ablations can inspect or replace them.
    """

    def __init__(
        self,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        crop_ratio: float = 0.875,
        hflip: bool = True,
        vflip: bool = False,
        randaugment_ops: int = 3,
        exclude_color_aug: bool = False,
        cutout: bool = True,
    ) -> None:
        if not 0.0 < crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
        if randaugment_ops < 0:
            raise ValueError(f"randaugment_ops must be >= 0, got {randaugment_ops}")
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if self.mean.numel() != self.std.numel() or (self.std <= 0).any():
            raise ValueError(f"mean {mean} and std {std} must have equal lengths, std > 0")
        self.crop_ratio = crop_ratio
        self.hflip = hflip
        self.vflip = vflip
        self.randaugment_ops = randaugment_ops
        self.cutout = cutout
        self.ops: tuple[str, ...] = NO_COLOR_OPS if exclude_color_aug else ALL_OPS
        self.pixel_ops: dict[str, PixelOp] = dict(PIXEL_OPS)

    # ---------------------------------------------------------------- helpers

    def _check(self, x: torch.Tensor) -> None:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"expected uint8 [B, C, H, W] with C in (1, 3), got {x.dtype} {tuple(x.shape)}"
            )
        if self.mean.numel() not in (1, x.shape[1]):
            raise ValueError(f"{self.mean.numel()} mean values for {x.shape[1]} channels")

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x / 255 - mean) / std as one multiply-add per channel."""
        scale = (1.0 / (255.0 * self.std)).to(x.device).view(1, -1, 1, 1)
        shift = (self.mean / self.std).to(x.device).view(1, -1, 1, 1)
        return (x.float() * scale).sub_(shift)

    @staticmethod
    def _rand(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniform draws from ``gen`` (on its own device), moved to the data's device."""
        return torch.rand(shape, generator=gen, device=gen.device).to(device)

    def _crop_flip(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """USB's RandomCrop(size, padding=int(size * (1 - crop_ratio)), reflect) then flips,
        as one gather of precomputed source indices."""
        b, c, h, w = x.shape
        pad_h, pad_w = int(h * (1 - self.crop_ratio)), int(w * (1 - self.crop_ratio))
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"crop_ratio {self.crop_ratio} pads more than the image size")
        u = self._rand((b, 4), gen, x.device)
        dy = (u[:, 0] * (2 * pad_h + 1)).long().clamp_(max=2 * pad_h) - pad_h
        dx = (u[:, 1] * (2 * pad_w + 1)).long().clamp_(max=2 * pad_w) - pad_w
        rows = torch.arange(h, device=x.device).expand(b, h)
        cols = torch.arange(w, device=x.device).expand(b, w)
        if self.vflip:
            rows = torch.where((u[:, 2] < 0.5).unsqueeze(1), h - 1 - rows, rows)
        if self.hflip:
            cols = torch.where((u[:, 3] < 0.5).unsqueeze(1), w - 1 - cols, cols)
        rows = _reflect(rows + dy.unsqueeze(1), h)
        cols = _reflect(cols + dx.unsqueeze(1), w)
        index = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view(b, 1, h * w)
        return x.flatten(2).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)

    def _geometric_step(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> None:
        """Warp, in place, every sample whose op at this step is geometric."""
        b, _, h, w = x.shape
        matrix = torch.zeros(b, 2, 3, device=x.device)
        matrix[:, 0, 0] = 1.0
        matrix[:, 1, 1] = 1.0
        chosen = torch.zeros(b, dtype=torch.bool, device=x.device)
        for k, name in enumerate(self.ops):
            if name not in GEOMETRIC_OPS:
                continue
            sel = op == k
            if not sel.any():
                continue
            chosen |= sel
            v = mag[sel]
            m = matrix[sel]
            if name == "Rotate":  # about the image centre; the range is symmetric in sign
                theta = v * (math.pi / 180.0)
                cos, sin = theta.cos(), theta.sin()
                cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
                m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = cos, -sin, cx - cos * cx + sin * cy
                m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = sin, cos, cy - sin * cx - cos * cy
            elif name == "ShearX":  # PIL AFFINE (1, v, 0, 0, 1, 0): shear about the top edge
                m[:, 0, 1] = v
            elif name == "ShearY":
                m[:, 1, 0] = v
            elif name == "TranslateX":  # USB: fraction of the width
                m[:, 0, 2] = v * w
            else:  # TranslateY, fraction of the height (USB uses the width of square images)
                m[:, 1, 2] = v * h
            matrix[sel] = m
        if chosen.any():
            idx = chosen.nonzero().squeeze(1)
            x[idx] = _warp(x[idx], matrix[idx])

    def _cutout(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A square of side U(0, 0.5) * width at a uniform centre, clipped at the borders and
        filled with USB's grey."""
        b, c, h, w = x.shape
        u = self._rand((b, 3), gen, x.device)
        side = u[:, 0] * 0.5 * w
        x0 = (u[:, 1] * w - side / 2).clamp(min=0).floor()
        y0 = (u[:, 2] * h - side / 2).clamp(min=0).floor()
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        in_x = (cols >= x0.view(b, 1, 1)) & (cols < (x0 + side).view(b, 1, 1))
        in_y = (rows >= y0.view(b, 1, 1)) & (rows < (y0 + side).view(b, 1, 1))
        mask = (in_x & in_y).unsqueeze(1)
        fill_values = CUTOUT_FILL_RGB if c == 3 else (CUTOUT_FILL_GRAY,)
        fill = torch.tensor(fill_values, dtype=torch.uint8, device=x.device).view(1, c, 1, 1)
        return torch.where(mask, fill, x)

    def randaugment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Apply ``randaugment_ops`` ops per sample (uint8 in, uint8 out), in drawn order."""
        b, n = x.shape[0], self.randaugment_ops
        if n == 0 or b == 0:
            return x
        ops = torch.randint(len(self.ops), (b, n), generator=gen, device=gen.device).to(x.device)
        u = self._rand((b, n), gen, x.device)
        low = torch.tensor([OP_RANGES[o][0] for o in self.ops], device=x.device)
        high = torch.tensor([OP_RANGES[o][1] for o in self.ops], device=x.device)
        mags = low[ops] + (high - low)[ops] * u
        x = x.clone()
        for step in range(n):
            op, mag = ops[:, step], mags[:, step]
            self._geometric_step(x, op, mag)
            for k, name in enumerate(self.ops):
                if name in GEOMETRIC_OPS or name == "Identity":
                    continue
                idx = (op == k).nonzero().squeeze(1)
                if idx.numel():
                    x[idx] = self.pixel_ops[name](x[idx], mag[idx])
        return x

    # ---------------------------------------------------------------- views

    def eval(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Normalisation only (USB evaluates small images uncropped)."""
        self._check(x)
        return self._normalise(x)

    def weak(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        self._check(x)
        return self._normalise(self._crop_flip(x, gen))

    def strong(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        self._check(x)
        x = self.randaugment(self._crop_flip(x, gen), gen)
        if self.cutout:
            x = self._cutout(x, gen)
        return self._normalise(x)


def build_image_views(**spec: object) -> dict[str, ViewFn]:
    """Build the image views from a task's ``augment`` spec (see ``ImageViews`` for keys)."""
    views = ImageViews(**spec)  # type: ignore[arg-type]
    return {"eval": views.eval, "weak": views.weak, "strong": views.strong}
