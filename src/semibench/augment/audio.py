"""Audio views: waveform crops and effects, then either normalised log-mel features (with
SpecAugment) or normalised waveforms for HuBERT / wav2vec 2.0.

Input: float32 mono waveforms ``[B, T]`` at ``sample_rate``; ``crop_seconds`` sets the length
``L`` of every view. Output (``features``): ``"logmel"`` float32 ``[B, 1, n_mels, frames]``, or
``"waveform"`` float32 ``[B, L]`` normalised per clip. Two recipes (``strong_effects``):
``"basic"`` (the offline keyword task's) and ``"usb"`` (USB's sox effects, re-implemented with
torch: gain, pitch, speed, reverb). Every random number comes from the generator passed to the
view, every draw has a fixed shape, the whole batch is processed at once and the draws are
made on the host, so a view never waits for the device.

Every setting, the approximations of sox and why: docs/concepts/views.md (the site's Views page).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
import torchaudio
import torchaudio.functional as AF

# torchaudio's resampler in its two halves, so the kernel (data-independent) is built once on
# the host; ``AF.resample`` builds it on the data's device with a blocking copy each call
from torchaudio.functional.functional import (
    _apply_sinc_resample_kernel,
    _get_sinc_resample_kernel,
)

from semibench.augment.base import PerDevice, ViewFn, host_rand, to_device, to_device_all

_LOG_FLOOR = 1e-6
_NORM_EPS = 1e-7  # the Hugging Face feature extractor's variance floor

FEATURES = ("logmel", "waveform")
STRONG_EFFECTS = ("basic", "usb")
USB_EFFECTS = ("gain", "pitch", "speed", "reverb")

#: defaults that differ between the recipes (None in the signature means "the recipe's own")
_RECIPE_DEFAULTS = {
    "basic": {"gain_db": (-6.0, 6.0), "speed": (0.85, 1.15)},
    "usb": {"gain_db": (-5.0, 5.0), "speed": (0.5, 2.0)},
}

_SINC_ZEROS = 6  # zero crossings of the interpolation kernel on each side
_SINC_ROLLOFF = 0.99
_SINC_CHUNK = 16384  # output samples per step of the interpolator
_PHASES = 512  # fractional positions tabulated by the interpolator
_SPEED_STEPS = 100  # speed factors are rounded to 1/100


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    """Accept a (low, high) tuple or a YAML list; check the order."""
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{name}: low {low} > high {high}")
    return low, high


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=generator, device=generator.device)).cpu()


class _LogMel:
    """Normalised log-mel features; one MelSpectrogram module per device, built on first use
    and only read afterwards (so two threads may share it)."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float,
        f_max: float | None,
        mean: float,
        std: float,
    ) -> None:
        self.kwargs = dict(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
        )
        self.mean, self.std = mean, std
        self._modules = PerDevice(self._build)

    def _build(self, device: torch.device) -> torchaudio.transforms.MelSpectrogram:
        module = torchaudio.transforms.MelSpectrogram(**self.kwargs)
        return module.to(device, non_blocking=True)

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        module = self._modules.get(wav.device)
        with torch.no_grad():
            mel = module(wav)  # [B, n_mels, frames]
        return ((torch.log(mel + _LOG_FLOOR) - self.mean) / self.std).unsqueeze(1)


def _check_input(wav: torch.Tensor) -> torch.Tensor:
    if wav.dim() != 2:
        raise ValueError(f"audio views expect waveforms [B, T], got shape {tuple(wav.shape)}")
    return wav.float()


def valid_lengths(wav: torch.Tensor) -> torch.Tensor:
    """Per row, the index after the last non-zero sample (0 for a silent row): the clip's length
    once the zero padding at its end is ignored."""
    if wav.shape[1] == 0:
        return torch.zeros(wav.shape[0], dtype=torch.long, device=wav.device)
    pos = torch.arange(1, wav.shape[1] + 1, device=wav.device)
    return ((wav != 0) * pos).amax(dim=1)


def normalise_waveform(wav: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per row (population variance, 1e-7 floor)."""
    var, mean = torch.var_mean(wav, dim=1, keepdim=True, correction=0)
    return (wav - mean) / torch.sqrt(var + _NORM_EPS)


def _crop(wav: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """``out[b, t] = wav[b, start[b] + t]`` (integer starts), zero outside the waveform."""
    total = wav.shape[1]
    padded = F.pad(wav, (1, 1))  # padded[0] and padded[total + 1] are the zero fill
    start = to_device(start, wav.device).long()
    idx = start[:, None] + torch.arange(length, device=wav.device) + 1
    return padded.gather(1, idx.clamp_(0, total + 1))


def _random_crop(
    wav: torch.Tensor, lengths: torch.Tensor, u: torch.Tensor, length: int
) -> torch.Tensor:
    """USB's ``random_subsample``: a crop of ``length`` starting uniformly in
    ``[0, lengths - length]``; a row no longer than ``length`` starts at 0 (zero padded).
    ``lengths`` may live on the device (they come from the data), ``u`` on the host."""
    lengths = to_device(lengths, wav.device)
    slack = (lengths - length).clamp_min(0)
    start = (to_device(u, wav.device) * (slack + 1).to(u.dtype)).floor().long().minimum(slack)
    out = _crop(wav, start, length)
    inside = torch.arange(length, device=wav.device)[None, :] < (lengths - start)[:, None]
    return out * inside


def _resample_crop(
    wav: torch.Tensor, start: torch.Tensor, rate: torch.Tensor, length: int
) -> torch.Tensor:
    """``out[b, t] = wav[b, (start[b] + t) * rate[b]]``, linearly interpolated, zero outside."""
    total = wav.shape[1]
    start, rate = to_device_all([start, rate], wav.device)
    t = torch.arange(length, device=wav.device, dtype=torch.float32)
    pos = (start[:, None] + t) * rate[:, None]
    left = pos.floor()
    frac = pos - left
    padded = F.pad(wav, (1, 1))
    i0 = (left.long() + 1).clamp_(0, total + 1)
    i1 = (left.long() + 2).clamp_(0, total + 1)
    return torch.lerp(padded.gather(1, i0), padded.gather(1, i1), frac)


def _phase_tables(cutoff: torch.Tensor, half: int) -> torch.Tensor:
    """Windowed-sinc kernels ``[R, PHASES + 1, 2 * half]``: row r, fractional position
    ``p / PHASES``, taps ``-half + 1 .. half`` (Hann window, cut-off ``cutoff[r]`` x Nyquist)."""
    taps = torch.arange(-half + 1, half + 1, dtype=torch.float64)
    frac = torch.arange(_PHASES + 1, dtype=torch.float64) / _PHASES
    arg = (frac[None, :, None] - taps) * cutoff[:, None, None]
    window = torch.where(
        arg.abs() < _SINC_ZEROS, torch.cos(arg * (math.pi / (2 * _SINC_ZEROS))) ** 2, 0.0
    )
    return (cutoff[:, None, None] * torch.sinc(arg) * window).float()


def sinc_resample(
    wav: torch.Tensor, rate: torch.Tensor, out_lengths: torch.Tensor, out_width: int
) -> torch.Tensor:
    """Band-limited resampling with a per-row rate: ``out[b, t] = wav_b(t * rate[b])`` for
    ``t < out_lengths[b]`` (zero after), where ``wav_b`` is the row's band-limited continuation
    (zero outside the row). ``rate`` > 1 reads faster (shorter, higher); the kernel's cut-off
    follows ``min(1, 1 / rate)`` so that reading faster does not alias. Kernels come from a
    table of ``_PHASES`` fractional positions (nearest phase: under 1/1000 sample of error)."""
    rows, total = wav.shape
    out = wav.new_zeros(rows, out_width)
    if rows == 0 or out_width == 0:
        return out
    rate = rate.to(torch.float64).cpu()
    cutoff = _SINC_ROLLOFF * torch.clamp(1.0 / rate, max=1.0)
    half = math.ceil(_SINC_ZEROS / float(cutoff.min()))  # taps on each side
    kernels = to_device(_phase_tables(cutoff, half).view(-1, 2 * half), wav.device)
    # windows[r, i] = the 2 * half input samples around base index i (a view, no copy)
    windows = F.pad(wav, (half - 1, half + 1)).unfold(1, 2 * half, 1)
    row = torch.arange(rows, device=wav.device)[:, None]
    row_offset = (torch.arange(rows) * (_PHASES + 1))[:, None]
    for first in range(0, out_width, _SINC_CHUNK):
        t = torch.arange(first, min(first + _SINC_CHUNK, out_width), dtype=torch.float64)
        pos = t[None, :] * rate[:, None]  # [R, C], float64: exact fractional parts
        base = pos.floor()
        phase = ((pos - base) * _PHASES).round().long() + row_offset
        base, phase = to_device_all([base.long().clamp_(0, total), phase], wav.device)
        values = windows[row, base]  # [R, C, 2 * half]
        kernel = kernels.index_select(0, phase.view(-1)).view(values.shape)
        out[:, first : first + len(t)] = torch.einsum("rck,rck->rc", values, kernel)
    out_lengths = to_device(out_lengths, wav.device)
    inside = torch.arange(out_width, device=wav.device)[None, :] < out_lengths[:, None]
    return out * inside


@lru_cache(maxsize=256)
def _resample_kernel(orig_freq: int, new_freq: int) -> tuple[torch.Tensor, int]:
    """torchaudio's windowed-sinc kernel of ``AF.resample`` (default settings, float32) and its
    width, built on the host once per rate pair (speeds are rounded to 1/100: <= 151 pairs)."""
    gcd = math.gcd(orig_freq, new_freq)
    return _get_sinc_resample_kernel(orig_freq, new_freq, gcd, 6, 0.99, "sinc_interp_hann", None,
                                     torch.device("cpu"), torch.float32)


def _resample(wav: torch.Tensor, orig_freq: int, new_freq: int) -> torch.Tensor:
    """``AF.resample(wav, orig_freq, new_freq)`` (float32) with a cached host-side kernel."""
    kernel, width = _resample_kernel(orig_freq, new_freq)
    gcd = math.gcd(orig_freq, new_freq)
    return _apply_sinc_resample_kernel(wav, orig_freq, new_freq, gcd,
                                       to_device(kernel, wav.device), width)


def _speed_rows(
    wav: torch.Tensor, steps: torch.Tensor, out_lengths: torch.Tensor, width: int
) -> torch.Tensor:
    """sox ``speed``: resample row r by ``steps[r] / _SPEED_STEPS`` (host-side) with
    torchaudio's band-limited resampler (``orig_freq = steps``, ``new_freq = _SPEED_STEPS``);
    rows with equal steps share one call."""
    out = wav.new_zeros(wav.shape[0], width)
    for step in steps.unique().tolist():
        rows = to_device(torch.nonzero(steps == step).flatten(), wav.device)
        done = wav.index_select(0, rows)
        if step != _SPEED_STEPS:
            done = _resample(done, int(step), _SPEED_STEPS)
        keep = min(done.shape[1], width)
        out.narrow(1, 0, keep).index_copy_(0, rows, done.narrow(1, 0, keep))
    out_lengths = to_device(out_lengths, wav.device)
    inside = torch.arange(width, device=wav.device)[None, :] < out_lengths[:, None]
    return out * inside


def _grown_width(width: int, new_lengths: torch.Tensor, steps: torch.Tensor) -> int:
    """The waveforms' width after a speed change: on the CPU the longest new clip (reading it
    costs nothing there, and it is what earlier releases did); elsewhere the bound
    ``ceil(width / s)`` of the host-side factors, so that no device value is read."""
    if new_lengths.device.type == "cpu":
        return max(width, int(new_lengths.max()))
    return max(width, *(-(-width * _SPEED_STEPS // s) for s in steps.tolist()))


def _fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Row-wise linear convolution truncated to ``x``'s width, via FFTs of a power-of-two size
    (torch's FFT is several times slower at sizes with large prime factors)."""
    width = x.shape[1]
    n_fft = 1 << (width + h.shape[1] - 2).bit_length()
    spectrum = torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(h, n=n_fft)
    return torch.fft.irfft(spectrum, n=n_fft)[:, :width]


def _impulse_responses(noise: torch.Tensor, sample_rate: int, rt60: float) -> torch.Tensor:
    """Unit-energy synthetic reverb tails from white noise rows ``[R, n]`` (see module doc)."""
    damping = 0.5  # one-pole low-pass pole: sox's default 50 % high-frequency damping
    smooth = AF.lfilter(
        noise,
        a_coeffs=torch.tensor([1.0, -damping], dtype=noise.dtype),
        b_coeffs=torch.tensor([1.0 - damping, 0.0], dtype=noise.dtype),
        clamp=False,
    )
    t = torch.arange(noise.shape[1], dtype=noise.dtype) / sample_rate
    ir = smooth * torch.exp(-math.log(1000.0) * t / rt60)  # -60 dB after rt60 seconds
    return ir / ir.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def usb_effects(
    wav: torch.Tensor,
    generator: torch.Generator,
    *,
    sample_rate: int = 16000,
    effects: Sequence[str] = USB_EFFECTS,
    effects_per_sample: int = 2,
    gain_db: Sequence[float] = (-5.0, 5.0),
    pitch_cents: Sequence[float] = (-2.0, 2.0),
    speed: Sequence[float] = (0.5, 2.0),
    reverb_rt60: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """USB's strong waveform effects (see the module docstring) on a batch ``[B, T]``.

    Returns the effected waveforms ``[B, T']`` (``T'`` grows when a clip is slowed down) and
    each clip's length (on ``wav``'s device); samples after a clip's length are 0. A clip's
    length at the input is its :func:`valid_lengths` (its trailing zero padding is not audio).
    Which rows an effect applies to is decided on the host from the draws.
    """
    wav = _check_input(wav).clone()
    unknown = sorted(set(effects) - set(USB_EFFECTS))
    if unknown or not effects:
        raise ValueError(f"usb_effects: unknown or no effects {unknown}; allowed: {USB_EFFECTS}")
    gain_range = _pair(gain_db, "gain_db")
    pitch_range = _pair(pitch_cents, "pitch_cents")
    speed_range = _pair(speed, "speed")
    if speed_range[0] < 1 / _SPEED_STEPS or reverb_rt60 <= 0:
        raise ValueError(f"speed factors must be >= {1 / _SPEED_STEPS} and reverb_rt60 > 0")
    batch, draws = wav.shape[0], max(int(effects_per_sample), 0)
    n_ir = max(int(round(reverb_rt60 * sample_rate)), 1)
    g = generator
    # every draw has a fixed shape, so a sample's numbers do not depend on the others' choices
    choice = torch.randint(len(effects), (batch, draws), generator=g, device=g.device).cpu()
    gains = torch.trunc(_uniform(batch * draws, *gain_range, g)).view(batch, draws)
    cents = _uniform(batch * draws, *pitch_range, g).view(batch, draws)
    speeds = _uniform(batch * draws, *speed_range, g).view(batch, draws)
    ir_noise = torch.randn(batch, draws, n_ir, generator=g, device=g.device).cpu()

    lengths = valid_lengths(wav)  # data-dependent: stays on the data's device
    dev = wav.device
    for slot in range(draws):
        for code, name in enumerate(effects):
            rows = torch.nonzero(choice[:, slot] == code).flatten()
            if len(rows) == 0:
                continue
            if name == "pitch":
                factor = 2.0 ** (cents[rows, slot].double() / 1200.0)
                moved = torch.nonzero(factor != 1.0).flatten()
                at = to_device(rows[moved], dev)
                x, n = wav.index_select(0, at), lengths.index_select(0, at)
                shifted = sinc_resample(x, factor[moved], n, x.shape[1])
                wav.index_copy_(0, at, shifted.clamp(-1.0, 1.0))
                continue
            at = to_device(rows, dev)
            x, n = wav.index_select(0, at), lengths.index_select(0, at)
            if name == "gain":
                peak = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
                scale = to_device(10.0 ** (gains[rows, slot] / 20.0), dev).to(x.dtype)
                wav.index_copy_(0, at, (x / peak * scale[:, None]).clamp(-1.0, 1.0))
            elif name == "speed":
                steps = (speeds[rows, slot] * _SPEED_STEPS).round().long()  # s = steps / 100
                on_dev = to_device(steps, dev)
                new = (n * _SPEED_STEPS + on_dev - 1) // on_dev  # ceil(n / s), as the resampler
                width = _grown_width(wav.shape[1], new, steps)
                if width > wav.shape[1]:
                    wav = F.pad(wav, (0, width - wav.shape[1]))
                wav.index_copy_(0, at, _speed_rows(x, steps, new, width).clamp(-1.0, 1.0))
                lengths.index_copy_(0, at, new)
            else:  # reverb
                ir = _impulse_responses(ir_noise[rows, slot], sample_rate, reverb_rt60)
                wet = _fft_convolve(x, to_device(ir, dev).to(x.dtype))
                inside = torch.arange(x.shape[1], device=dev)[None, :] < n[:, None]
                wav.index_copy_(0, at, (wet * inside.to(wet)).clamp(-1.0, 1.0))
    return wav, lengths


def _coloured_noise(
    batch: int, length: int, exponent: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Unit-RMS noise rows with power spectrum ~ 1/f**exponent[b]."""
    white = torch.randn(batch, length, generator=generator, device=generator.device)
    freqs = torch.fft.rfftfreq(length, device=white.device)
    freqs[0] = freqs[1]  # avoid 1/0; the DC bin is zeroed below
    gain = freqs[None, :] ** (-exponent.to(white.device)[:, None] / 2)
    gain[:, 0] = 0.0
    noise = torch.fft.irfft(torch.fft.rfft(white, dim=1) * gain, n=length, dim=1)
    return noise / noise.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def _masks(
    batch: int, size: int, count: int, max_width: int, generator: torch.Generator
) -> torch.Tensor:
    """Boolean ``[B, size]``: the union of ``count`` random intervals of width 0..max_width."""
    if count <= 0 or max_width <= 0:
        return torch.zeros(batch, size, dtype=torch.bool)
    max_width = min(max_width, size)
    u = torch.rand(2, batch, count, generator=generator, device=generator.device).cpu()
    width = (u[0] * (max_width + 1)).floor()
    start = (u[1] * (size - width + 1)).floor()
    pos = torch.arange(size, dtype=torch.float32)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # [B, count, size]
    return inside.any(dim=1)


def build_audio_views(
    *,
    sample_rate: int = 16000,
    crop_seconds: float = 1.0,
    features: str = "logmel",
    strong_effects: str = "basic",
    n_mels: int = 40,
    n_fft: int = 480,
    hop_length: int = 160,
    f_min: float = 20.0,
    f_max: float | None = None,
    log_mel_mean: float = -4.5,
    log_mel_std: float = 4.0,
    max_shift_seconds: float = 0.1,
    gain_db: Sequence[float] | None = None,
    speed: Sequence[float] | None = None,
    noise_snr_db: Sequence[float] = (10.0, 40.0),
    noise_exponent: Sequence[float] = (0.0, 2.0),
    usb_effects_pool: Sequence[str] = USB_EFFECTS,
    effects_per_sample: int = 2,
    pitch_cents: Sequence[float] = (-2.0, 2.0),
    reverb_rt60: float = 0.5,
    time_masks: int = 2,
    time_mask_frames: int = 12,
    freq_masks: int = 2,
    freq_mask_bins: int = 6,
) -> dict[str, ViewFn]:
    """Return the ``eval``/``weak``/``strong`` audio views (see the module docstring).

    ``gain_db`` and ``speed`` default to the chosen recipe's ranges (basic: +-6 dB, 0.85-1.15;
    usb: +-5 dB, 0.5-2.0). ``max_shift_seconds`` and the noise keys only affect ``basic``;
    ``usb_effects_pool``, ``effects_per_sample``, ``pitch_cents`` and ``reverb_rt60`` only
    ``usb``.
    """
    if features not in FEATURES:
        raise ValueError(f"features={features!r}; allowed: {', '.join(FEATURES)}")
    if strong_effects not in STRONG_EFFECTS:
        raise ValueError(f"strong_effects={strong_effects!r}; allowed: {', '.join(STRONG_EFFECTS)}")
    length = int(round(crop_seconds * sample_rate))
    max_shift = int(round(max_shift_seconds * sample_rate))
    if length <= 0 or max_shift < 0 or log_mel_std <= 0:
        raise ValueError("crop_seconds and log_mel_std must be > 0, max_shift_seconds >= 0")
    defaults = _RECIPE_DEFAULTS[strong_effects]
    gain_range = _pair(defaults["gain_db"] if gain_db is None else gain_db, "gain_db")
    speed_range = _pair(defaults["speed"] if speed is None else speed, "speed")
    snr_range = _pair(noise_snr_db, "noise_snr_db")
    exponent_range = _pair(noise_exponent, "noise_exponent")
    if speed_range[0] <= 0:
        raise ValueError(f"speed factors must be > 0, got {speed_range}")
    usb_kwargs = dict(
        sample_rate=sample_rate,
        effects=tuple(usb_effects_pool),
        effects_per_sample=effects_per_sample,
        gain_db=gain_range,
        pitch_cents=_pair(pitch_cents, "pitch_cents"),
        speed=speed_range,
        reverb_rt60=reverb_rt60,
    )
    if strong_effects == "usb":  # fail at build time, not at the first training step
        usb_effects(torch.zeros(1, 8), torch.Generator().manual_seed(0), **usb_kwargs)
    log_mel = _LogMel(
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max, log_mel_mean, log_mel_std
    )
    logmel = features == "logmel"

    def finish(wav: torch.Tensor) -> torch.Tensor:
        return log_mel(wav) if logmel else normalise_waveform(wav)

    def eval_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        offset = (wav.shape[1] - length) // 2
        if not logmel:  # too short: keep the start, pad at the end (as the HF extractor does)
            offset = max(offset, 0)
        start = torch.full((wav.shape[0],), offset, dtype=torch.long, device=wav.device)
        return finish(_crop(wav, start, length))

    def weak_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        batch = wav.shape[0]
        if strong_effects == "usb":
            u = host_rand((batch,), generator)
            return finish(_random_crop(wav, valid_lengths(wav), u, length))
        shift = torch.randint(
            -max_shift, max_shift + 1, (batch,), generator=generator, device=generator.device
        )
        return finish(_crop(wav, (wav.shape[1] - length) // 2 + shift.cpu(), length))

    def basic_strong(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, total = wav.shape
        gain = 10.0 ** (_uniform(batch, *gain_range, generator) / 20.0)
        rate = _uniform(batch, *speed_range, generator)
        shift = _uniform(batch, -max_shift, max_shift, generator)
        snr = _uniform(batch, *snr_range, generator)
        exponent = _uniform(batch, *exponent_range, generator)
        noise = _coloured_noise(batch, length, exponent, generator).cpu()
        # centre of the sped-up signal (total / rate samples long) plus the shift
        start = (total / rate - length) / 2 + shift
        gain, snr, start, rate, noise = to_device_all([gain, snr, start, rate, noise], wav.device)
        loud = (wav * gain[:, None]).clamp_(-1.0, 1.0)
        out = _resample_crop(loud, start, rate, length)
        power = out.pow(2).mean(dim=1, keepdim=True)
        noise_rms = (power / 10.0 ** (snr[:, None] / 10.0)).sqrt()
        return out + noise * noise_rms

    def usb_strong(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        effected, lengths = usb_effects(wav, generator, **usb_kwargs)
        u = host_rand((wav.shape[0],), generator)
        return _random_crop(effected, lengths, u, length)

    def strong_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        recipe = usb_strong if strong_effects == "usb" else basic_strong
        out = finish(recipe(wav, generator))
        if not logmel:
            return out
        batch, _, mels, frames = out.shape
        freq = _masks(batch, mels, freq_masks, freq_mask_bins, generator)
        time = _masks(batch, frames, time_masks, time_mask_frames, generator)
        freq, time = to_device_all([freq, time], out.device)
        return out.masked_fill(freq[:, None, :, None] | time[:, None, None, :], 0.0)

    return {"eval": eval_view, "weak": weak_view, "strong": strong_view}


__all__ = [
    "FEATURES",
    "STRONG_EFFECTS",
    "USB_EFFECTS",
    "build_audio_views",
    "normalise_waveform",
    "sinc_resample",
    "usb_effects",
    "valid_lengths",
]
