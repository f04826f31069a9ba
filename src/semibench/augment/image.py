"""Image views: resize, USB's weak crop-and-flip, a batched RandAugment + Cutout, and the
Semi-Aves style random-resized-crop strong view.

Spec keys (a task's ``augment`` dict, merged with the config's; every key but ``mean``/``std``
has a default):

* ``mean``, ``std``: per-channel normalisation of ``x / 255`` (1 or 3 values, matching the
  channels after ``as_rgb``).
* ``resize`` (int or None): every view first resizes the stored image to ``resize x resize``
  (bilinear, antialiased; identical to PIL's bilinear resize that USB's ``Resize`` applies to
  its PIL images). The prepared images are square, so this is USB's ``Resize(resize)``. None
  keeps the stored size (e.g. TissueMNIST 28 -> 32, EuroSAT 64 -> 32, Semi-Aves 256).
* ``crop_size`` (int or None): side of the views' output, default the resized side. The weak
  view takes a random ``crop_size`` window, the eval view the centre window (torchvision's
  ``CenterCrop`` rounding), the ``random_resized`` strong view resamples to it.
* ``crop_ratio`` (float in (0, 1]): USB's reflect padding ``int(crop_size * (1 - crop_ratio))``
  on every side before the weak random crop (``RandomCrop(size, padding, "reflect")``);
  1.0 = no padding (Semi-Aves: ``RandomCrop(224)`` of the 256 image).
* ``hflip`` / ``vflip`` (bool): random horizontal / vertical flips, p = 0.5 each, in the weak
  and strong views (USB adds VFlip for EuroSAT and TissueMNIST).
* ``strong_crop``: ``"weak"`` (USB's CV default: the weak crop and flips, then RandAugment) or
  ``"random_resized"`` (Semi-Aves: ``RandomResizedCrop(crop_size)`` with scale (0.08, 1) and
  ratio (3/4, 4/3), then the flips, then RandAugment).
* ``randaugment_ops`` (int, default 3), ``exclude_color_aug`` (bool), ``cutout`` (bool): the
  strong view's RandAugment (below). USB's second RandAugment argument (the magnitude, 5 or 10)
  is unused by USB, so there is no key for it.
* ``as_rgb`` (bool): repeat a 1-channel image to 3 channels right after the resize, as USB's
  ``as_rgb`` PIL conversion does for TissueMNIST (so RandAugment and the Cutout colour see an
  RGB image, and an RGB-pretrained backbone gets 3 channels).

Order inside a view: resize -> as_rgb -> crop (and flips) -> [strong: RandAugment -> Cutout]
-> normalise. ``eval`` = resize -> as_rgb -> centre crop -> normalise (USB evaluates the small
images uncropped; Semi-Aves uses ``Resize(256) -> CenterCrop(224)``).

The strong view follows USB's RandAugment: every sample draws ``randaugment_ops`` operations
with replacement from the op list, each with a magnitude uniform in the op's range, applies them
in the drawn order and always ends with a Cutout. Unlike USB (PIL, one image at a time) the
whole batch is processed at once, because the views run on the CPU every training step:

* the weak crop (reflect padding) and flips are one integer gather for the whole batch;
* the random resized crop is one bilinear ``grid_sample`` with a per-sample box (PIL resamples
  each crop with an antialiasing filter, which only differs when a crop is shrunk, at most
  256/224 = 1.14x here);
* at each RandAugment step the samples that drew a geometric op (Rotate, Shear, Translate) are
  warped together by one gather with a per-sample affine matrix (nearest neighbour and black
  fill, as PIL does by default);
* each pixel op runs once per step on the sub-batch that drew it.

All randomness comes from the ``torch.Generator`` passed to the view, never the global RNG.
The image stays uint8 until normalisation so that Posterize, Solarize and Equalize keep their
integer meaning, and pixel ops round and clip like PIL after every step.

Grayscale (1-channel) inputs without ``as_rgb``: Color blends with the grayscale image, which is
the image itself, so Color is the identity there; Contrast uses the image mean; the Cutout fill
is the luminance of USB's fill colour (123).
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

STRONG_CROPS = ("weak", "random_resized")
#: torchvision / timm RandomResizedCrop defaults (USB's Semi-Aves strong view)
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10


class ImageViews:
    """Holds the spec of the image views; ``eval``/``weak``/``strong`` are the ``ViewFn``s.

    ``ops`` (the RandAugment op list) and ``pixel_ops`` (name -> function) are attributes so
    tests and ablations can inspect or replace them. The spec keys are described in the module
    docstring.
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
        scale = (1.0 / (255.0 * self.std)).to(x.device).view(1, -1, 1, 1)
        shift = (self.mean / self.std).to(x.device).view(1, -1, 1, 1)
        return x.to(torch.float32, copy=True).mul_(scale).sub_(shift)

    @staticmethod
    def _rand(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniform draws from ``gen`` (on its own device), moved to the data's device."""
        return torch.rand(shape, generator=gen, device=gen.device).to(device)

    def _crop_flip(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """USB's RandomCrop(size, padding=int(size * (1 - crop_ratio)), reflect) then flips,
        as one gather of precomputed source indices."""
        b, c, h, w = x.shape
        out_h, out_w = self._out_size(x)
        pad_h, pad_w = int(out_h * (1 - self.crop_ratio)), int(out_w * (1 - self.crop_ratio))
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"crop_ratio {self.crop_ratio} pads more than the image size")
        u = self._rand((b, 4), gen, x.device)
        # torchvision: top ~ randint(0, h + 2 * pad - size + 1) in the padded image
        span_h, span_w = h + 2 * pad_h - out_h + 1, w + 2 * pad_w - out_w + 1
        dy = (u[:, 0] * span_h).long().clamp_(max=span_h - 1) - pad_h
        dx = (u[:, 1] * span_w).long().clamp_(max=span_w - 1) - pad_w
        rows = torch.arange(out_h, device=x.device).expand(b, out_h)
        cols = torch.arange(out_w, device=x.device).expand(b, out_w)
        if self.vflip:
            rows = torch.where((u[:, 2] < 0.5).unsqueeze(1), out_h - 1 - rows, rows)
        if self.hflip:
            cols = torch.where((u[:, 3] < 0.5).unsqueeze(1), out_w - 1 - cols, cols)
        rows = _reflect(rows + dy.unsqueeze(1), h)
        cols = _reflect(cols + dx.unsqueeze(1), w)
        index = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view(b, 1, out_h * out_w)
        out = x.flatten(2).gather(2, index.expand(b, c, out_h * out_w))
        return out.view(b, c, out_h, out_w)

    def _random_resized_crop(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """torchvision's RandomResizedCrop (10 attempts, then its centre fallback) followed by
        the flips, resampled bilinearly to the output size in one ``grid_sample``."""
        b, c, h, w = x.shape
        out_h, out_w = self._out_size(x)
        dev = x.device
        u = self._rand((b, RRC_ATTEMPTS, 4), gen, dev)
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
        flips = self._rand((b, 2), gen, dev)
        fy = ((torch.arange(out_h, device=dev, dtype=torch.float32) + 0.5) / out_h).expand(b, -1)
        fx = ((torch.arange(out_w, device=dev, dtype=torch.float32) + 0.5) / out_w).expand(b, -1)
        if self.vflip:
            fy = torch.where((flips[:, 0] < 0.5).unsqueeze(1), 1.0 - fy, fy)
        if self.hflip:
            fx = torch.where((flips[:, 1] < 0.5).unsqueeze(1), 1.0 - fx, fx)
        # pixel-centre coordinates inside the box, normalised for align_corners=False
        gx = (left.unsqueeze(1) + fx * tw.unsqueeze(1)) / w * 2.0 - 1.0  # [b, out_w]
        gy = (top.unsqueeze(1) + fy * th.unsqueeze(1)) / h * 2.0 - 1.0  # [b, out_h]
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
