"""Audio views: waveform crops and effects, then normalised log-mel features with SpecAugment.

Input: float32 mono waveforms ``[B, T]`` at ``sample_rate``. Output: float32 log-mel features
``[B, 1, n_mels, frames]`` with ``frames = 1 + crop_samples // hop_length`` (centred STFT),
normalised by fixed constants (``(log(mel + 1e-6) - log_mel_mean) / log_mel_std``) so that no
statistic depends on the batch.

* ``eval``: centre crop (or zero pad) to ``crop_seconds``, features.
* ``weak``: a random time shift of up to ``max_shift_seconds`` either way (zero fill), features.
  This is the standard keyword-spotting shift (Speech Commands uses +-100 ms).
* ``strong``: per sample a random gain (then clipped to [-1, 1], i.e. saturation), a random speed
  change (time axis resampled by linear interpolation, factor in ``speed``; > 1 is faster), a
  random shift, additive coloured noise (spectral exponent uniform in ``noise_exponent``: 0
  white, 1 pink, 2 brown) at a random SNR relative to the crop's power, features, then
  SpecAugment: ``time_masks`` time masks of up to ``time_mask_frames`` frames and
  ``freq_masks`` frequency masks of up to ``freq_mask_bins`` mel bins, each sample its own,
  filled with 0 (the normalised mean).

The whole batch is processed at once, because the views run on the CPU every training step: the
speed change, shift and crop are one gather with per-sample fractional positions, the noise is
shaped by one batched FFT and the masks are built from broadcast comparisons. Every random number
comes from the ``torch.Generator`` passed to the view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchaudio

from semibench.augment import ViewFn

_LOG_FLOOR = 1e-6


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    """Accept a (low, high) tuple or a YAML list; check the order."""
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{name}: low {low} > high {high}")
    return low, high


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


class _LogMel:
    """Normalised log-mel features; one MelSpectrogram module per device (built on first use)."""

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
        self._modules: dict[torch.device, torchaudio.transforms.MelSpectrogram] = {}

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        module = self._modules.get(wav.device)
        if module is None:
            module = torchaudio.transforms.MelSpectrogram(**self.kwargs).to(wav.device)
            self._modules[wav.device] = module
        with torch.no_grad():
            mel = module(wav)  # [B, n_mels, frames]
        return ((torch.log(mel + _LOG_FLOOR) - self.mean) / self.std).unsqueeze(1)


def _check_input(wav: torch.Tensor) -> torch.Tensor:
    if wav.dim() != 2:
        raise ValueError(f"audio views expect waveforms [B, T], got shape {tuple(wav.shape)}")
    return wav.float()


def _crop(wav: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """``out[b, t] = wav[b, start[b] + t]`` (integer starts), zero outside the waveform."""
    total = wav.shape[1]
    padded = F.pad(wav, (1, 1))  # padded[0] and padded[total + 1] are the zero fill
    idx = start.to(wav.device, torch.long)[:, None] + torch.arange(length, device=wav.device) + 1
    return padded.gather(1, idx.clamp_(0, total + 1))


def _resample_crop(
    wav: torch.Tensor, start: torch.Tensor, rate: torch.Tensor, length: int
) -> torch.Tensor:
    """``out[b, t] = wav[b, (start[b] + t) * rate[b]]``, linearly interpolated, zero outside."""
    total = wav.shape[1]
    t = torch.arange(length, device=wav.device, dtype=torch.float32)
    pos = (start.to(wav.device)[:, None] + t) * rate.to(wav.device)[:, None]
    left = pos.floor()
    frac = pos - left
    padded = F.pad(wav, (1, 1))
    i0 = (left.long() + 1).clamp_(0, total + 1)
    i1 = (left.long() + 2).clamp_(0, total + 1)
    return torch.lerp(padded.gather(1, i0), padded.gather(1, i1), frac)


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
    n_mels: int = 40,
    n_fft: int = 480,
    hop_length: int = 160,
    f_min: float = 20.0,
    f_max: float | None = None,
    log_mel_mean: float = -4.5,
    log_mel_std: float = 4.0,
    max_shift_seconds: float = 0.1,
    gain_db: Sequence[float] = (-6.0, 6.0),
    speed: Sequence[float] = (0.85, 1.15),
    noise_snr_db: Sequence[float] = (10.0, 40.0),
    noise_exponent: Sequence[float] = (0.0, 2.0),
    time_masks: int = 2,
    time_mask_frames: int = 12,
    freq_masks: int = 2,
    freq_mask_bins: int = 6,
) -> dict[str, ViewFn]:
    """Return the ``eval``/``weak``/``strong`` audio views (see the module docstring)."""
    length = int(round(crop_seconds * sample_rate))
    max_shift = int(round(max_shift_seconds * sample_rate))
    if length <= 0 or max_shift < 0 or log_mel_std <= 0:
        raise ValueError("crop_seconds and log_mel_std must be > 0, max_shift_seconds >= 0")
    gain_range = _pair(gain_db, "gain_db")
    speed_range = _pair(speed, "speed")
    snr_range = _pair(noise_snr_db, "noise_snr_db")
    exponent_range = _pair(noise_exponent, "noise_exponent")
    if speed_range[0] <= 0:
        raise ValueError(f"speed factors must be > 0, got {speed_range}")
    features = _LogMel(
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max, log_mel_mean, log_mel_std
    )

    def eval_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        start = torch.full((wav.shape[0],), (wav.shape[1] - length) // 2, dtype=torch.long)
        return features(_crop(wav, start, length))

    def weak_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        batch = wav.shape[0]
        shift = torch.randint(
            -max_shift, max_shift + 1, (batch,), generator=generator, device=generator.device
        )
        return features(_crop(wav, (wav.shape[1] - length) // 2 + shift.cpu(), length))

    def strong_view(wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wav = _check_input(wav)
        batch, total = wav.shape
        gain = 10.0 ** (_uniform(batch, *gain_range, generator) / 20.0)
        rate = _uniform(batch, *speed_range, generator)
        shift = _uniform(batch, -max_shift, max_shift, generator)
        snr = _uniform(batch, *snr_range, generator)
        exponent = _uniform(batch, *exponent_range, generator)
        noise = _coloured_noise(batch, length, exponent, generator).to(wav.device)
        # centre of the sped-up signal (total / rate samples long) plus the shift
        start = (total / rate - length) / 2 + shift
        loud = (wav * gain.to(wav.device)[:, None]).clamp_(-1.0, 1.0)
        out = _resample_crop(loud, start, rate, length)
        power = out.pow(2).mean(dim=1, keepdim=True)
        noise_rms = (power / 10.0 ** (snr.to(wav.device)[:, None] / 10.0)).sqrt()
        feats = features(out + noise * noise_rms)
        _, _, mels, frames = feats.shape
        freq = _masks(batch, mels, freq_masks, freq_mask_bins, generator).to(feats.device)
        time = _masks(batch, frames, time_masks, time_mask_frames, generator).to(feats.device)
        return feats.masked_fill(freq[:, None, :, None] | time[:, None, None, :], 0.0)

    return {"eval": eval_view, "weak": weak_view, "strong": strong_view}


__all__ = ["build_audio_views"]
