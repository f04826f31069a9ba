"""Audio views: shapes, determinism of eval, reproducibility of the random views, effects."""

from __future__ import annotations

import math

import pytest
import torch

from semibench.augment import build_views
from semibench.augment.audio import (
    build_audio_views,
    normalise_waveform,
    sinc_resample,
    usb_effects,
)
from semibench.tasks.keywords import SpokenKeywords

SR = 16000
#: strong view with every waveform effect switched off (and no masks)
NEUTRAL = dict(
    gain_db=(0.0, 0.0),
    speed=(1.0, 1.0),
    max_shift_seconds=0.0,
    noise_snr_db=(200.0, 200.0),
    time_masks=0,
    freq_masks=0,
)


def clips(batch: int = 4, length: int = SR, seed: int = 0) -> torch.Tensor:
    """Noisy tone bursts in [-1, 1], a stand-in for spoken words."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    freq = 300 + 1500 * torch.rand(batch, 1, generator=gen)
    envelope = ((t > 0.3) & (t < 0.7)).float()
    wav = 0.5 * torch.sin(2 * math.pi * freq * t) * envelope
    return (wav + 0.01 * torch.randn(batch, length, generator=gen)).clamp(-1, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_views_and_shapes() -> None:
    spec = SpokenKeywords.augment
    views = build_views("audio", spec)  # the task's spec is accepted
    assert set(views) == {"eval", "weak", "strong"}
    frames = 1 + SR // spec["hop_length"]
    for length in (SR, 12000, 20000):  # exact, shorter (padded) and longer (cropped) inputs
        x = clips(length=length)
        for name, view in views.items():
            out = view(x, gen(0))
            assert out.shape == (4, 1, spec["n_mels"], frames), (name, length)
            assert out.dtype == torch.float32
            assert torch.isfinite(out).all()


def test_eval_is_deterministic_and_centre_crops() -> None:
    views = build_audio_views()
    x = clips(length=20000)
    a, b = views["eval"](x, gen(0)), views["eval"](x, gen(1))
    assert torch.equal(a, b)
    centre = x[:, 2000:18000]
    assert torch.equal(views["eval"](centre, gen(0)), a)


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_random_views_are_reproducible(name: str) -> None:
    view = build_audio_views()[name]
    x = clips()
    assert torch.equal(view(x, gen(3)), view(x, gen(3)))
    assert not torch.equal(view(x, gen(3)), view(x, gen(4)))


def test_strong_differs_from_weak_and_eval() -> None:
    views = build_audio_views()
    x = clips()
    weak, strong = views["weak"](x, gen(5)), views["strong"](x, gen(5))
    assert not torch.allclose(weak, strong, atol=0.1)
    assert (strong - views["eval"](x, gen(0))).abs().mean() > (
        weak - views["eval"](x, gen(0))
    ).abs().mean()


def test_weak_is_a_time_shift() -> None:
    x = clips()
    no_shift = build_audio_views(max_shift_seconds=0.0)
    assert torch.equal(no_shift["weak"](x, gen(0)), no_shift["eval"](x, gen(0)))
    # with a shift, each sample is moved by its own amount: the tone onset frame varies
    shifted = build_audio_views(max_shift_seconds=0.1)["weak"](x.repeat(16, 1), gen(0))
    onset = (shifted[:, 0].mean(dim=1) > 0).float().argmax(dim=1)
    assert len(onset.unique()) > 1


def test_neutral_strong_equals_eval() -> None:
    views = build_audio_views(**NEUTRAL)
    x = clips()
    torch.testing.assert_close(
        views["strong"](x, gen(0)), views["eval"](x, gen(0)), atol=1e-3, rtol=0
    )


def test_speed_change_moves_the_pitch() -> None:
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * torch.arange(SR) / SR)[None]

    def peak_bin(factor: float) -> int:
        view = build_audio_views(**{**NEUTRAL, "speed": (factor, factor)})["strong"]
        return int(view(tone, gen(0))[0, 0, :, 20:80].mean(dim=1).argmax())

    assert peak_bin(0.85) < peak_bin(1.0) < peak_bin(1.15)


def test_noise_follows_the_snr() -> None:
    x = clips()
    clean = build_audio_views(**NEUTRAL)["strong"](x, gen(0))
    loud = build_audio_views(**{**NEUTRAL, "noise_snr_db": (0.0, 0.0)})["strong"](x, gen(0))
    soft = build_audio_views(**{**NEUTRAL, "noise_snr_db": (30.0, 30.0)})["strong"](x, gen(0))
    assert (loud - clean).abs().mean() > (soft - clean).abs().mean() > 0


def test_spec_augment_masks_each_sample_differently() -> None:
    spec = {**NEUTRAL, "time_masks": 1, "time_mask_frames": 20, "freq_masks": 1}
    spec["freq_mask_bins"] = 8
    x = clips(batch=32)
    out = build_audio_views(**spec)["strong"](x, gen(2))
    ref = build_audio_views(**NEUTRAL)["strong"](x, gen(2))
    zero_rows = (out[:, 0] == 0).all(dim=2)  # [B, n_mels]: a frequency mask
    zero_cols = (out[:, 0] == 0).all(dim=1)  # [B, frames]: a time mask
    assert zero_rows.any(dim=1).sum() > 16 and zero_cols.any(dim=1).sum() > 16
    assert zero_rows.sum(dim=1).max() <= 8 and zero_cols.sum(dim=1).max() <= 20
    assert len({tuple(r.tolist()) for r in zero_cols}) > 8  # masks are per sample
    # outside the masks the features are untouched
    keep = ~(zero_rows[:, :, None] | zero_cols[:, None, :])
    torch.testing.assert_close(out[:, 0][keep], ref[:, 0][keep], atol=1e-3, rtol=0)


def test_bad_spec_is_rejected() -> None:
    with pytest.raises(TypeError):
        build_audio_views(n_mel=40)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        build_audio_views(speed=(1.2, 0.8))
    with pytest.raises(ValueError):
        build_audio_views()["eval"](torch.zeros(2, 1, SR), gen(0))  # [B, 1, T] is not [B, T]


# --------------------------------------------------------------------------- waveform / USB

USB = dict(features="waveform", strong_effects="usb")


def tone(freq: float, seconds: float, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * SR)) / SR)


def dominant_hz(x: torch.Tensor) -> float:
    return float(torch.fft.rfft(x).abs().argmax()) * SR / len(x)


def test_waveform_features_are_normalised_per_clip() -> None:
    x = torch.zeros(3, SR)
    x[0] = 0.3 * tone(440, 1.0) + 0.1
    x[1, : SR // 2] = 0.05 * tone(880, 0.5) - 0.02  # half a second, then zero padding
    views = build_audio_views(crop_seconds=1.0, features="waveform")
    out = views["eval"](x, gen(0))
    assert out.shape == (3, SR) and out.dtype == torch.float32
    for row in out[:2]:  # over the whole crop, padding included (HF extractor, no mask)
        torch.testing.assert_close(row.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
        torch.testing.assert_close(row.std(unbiased=False), torch.tensor(1.0), atol=1e-3, rtol=0)
    assert torch.all(out[2] == 0)  # silence stays silent
    # the scale and offset of the input do not matter
    torch.testing.assert_close(views["eval"](7 * x + 0.01, gen(0))[:2], out[:2], atol=1e-3, rtol=0)
    torch.testing.assert_close(normalise_waveform(out), out, atol=1e-3, rtol=0)  # idempotent


def test_usb_eval_and_weak_crops() -> None:
    views = build_audio_views(crop_seconds=1.0, **USB)
    x = (torch.randn(16, 2 * SR, generator=gen(9)) * 0.3).clamp(-1, 1)
    norm = build_audio_views(crop_seconds=1.0, features="waveform")["eval"]  # normalise only
    # eval: the centre second, normalised
    torch.testing.assert_close(views["eval"](x, gen(0)), norm(x[:, SR // 2 : SR // 2 + SR], gen(0)))
    # weak: each clip its own random second of the clip, reproducible per generator
    weak = views["weak"](x, gen(1))
    assert torch.equal(weak, views["weak"](x, gen(1)))
    assert not torch.equal(weak, views["weak"](x, gen(2)))
    starts = []
    for row, out in zip(x, weak, strict=True):
        start = int(torch.nn.functional.conv1d(row[None, None], out[None, None]).argmax())
        torch.testing.assert_close(out, norm(row[None, start : start + SR], gen(0))[0])
        starts.append(start)
    assert len(set(starts)) > 8 and min(starts) >= 0 and max(starts) <= SR
    # a clip no longer than the crop is kept whole and padded at the end
    short = torch.zeros(2, 2 * SR)
    short[:, : SR // 2] = tone(300, 0.5)
    out = views["weak"](short, gen(0))
    assert torch.all(out[:, SR // 2 :] == out[:, -1:])  # the padding: one constant value
    assert out[:, : SR // 2].abs().max() > 10 * out[:, -1].abs().max()


def test_usb_weak_is_identity_when_clip_equals_crop() -> None:
    x = torch.stack([tone(300, 1.0), tone(500, 1.0)])
    views = build_audio_views(crop_seconds=1.0, **USB)
    assert torch.equal(views["weak"](x, gen(0)), views["eval"](x, gen(0)))


def test_usb_strong_is_reproducible_and_uses_only_the_generator() -> None:
    views = build_audio_views(crop_seconds=1.0, **USB)
    x = clips(batch=8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = views["strong"](x, gen(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(a, views["strong"](x, gen(7)))
    assert not torch.equal(a, views["strong"](x, gen(8)))
    assert a.shape == (8, SR) and torch.isfinite(a).all()
    logmel = build_audio_views(crop_seconds=1.0, strong_effects="usb")["strong"](x, gen(7))
    assert logmel.shape == (8, 1, 40, 101)


def effect(name: str, x: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    return usb_effects(x, gen(0), effects=(name,), effects_per_sample=1, **kwargs)


def test_usb_gain_normalises_the_peak_then_applies_integer_db() -> None:
    x = torch.stack([tone(440, 0.5, amp=0.1), tone(440, 0.5, amp=0.7)])
    out, lengths = effect("gain", x, gain_db=(-3.9, -3.0))  # int(U(-3.9, -3)) = -3 dB
    torch.testing.assert_close(out.abs().amax(dim=1), torch.full((2,), 10 ** (-3 / 20)))
    assert lengths.tolist() == [SR // 2] * 2
    loud, _ = effect("gain", x, gain_db=(4.0, 4.5))  # +4 dB over full scale: clipped
    assert loud.abs().max() == 1.0 and (loud.abs() == 1.0).float().mean() > 0.1
    draws = usb_effects(x.repeat(200, 1), gen(1), effects=("gain",), effects_per_sample=1)[0]
    peaks_db = torch.round(20 * torch.log10(draws.abs().amax(dim=1)))
    assert set(peaks_db.tolist()) <= {-4.0, -3.0, -2.0, -1.0, 0.0}  # int(U(-5, 5)), clipped > 0


def test_usb_speed_changes_length_and_pitch_together() -> None:
    x = tone(1000, 1.0)[None]
    fast, n_fast = effect("speed", x, speed=(2.0, 2.0))
    slow, n_slow = effect("speed", x, speed=(0.5, 0.5))
    assert n_fast.tolist() == [SR // 2] and n_slow.tolist() == [2 * SR]
    assert slow.shape[1] == 2 * SR and torch.all(fast[0, SR // 2 :] == 0)
    assert abs(dominant_hz(fast[0, : SR // 2]) - 2000) <= 2
    assert abs(dominant_hz(slow[0]) - 500) <= 1
    assert 0.45 < slow[0, 1000:-1000].abs().max() < 0.55  # band-limited: amplitude kept


def test_usb_pitch_keeps_the_length() -> None:
    x = tone(1000, 1.0)[None]
    up, n = effect("pitch", x, pitch_cents=(700.0, 700.0))  # a fifth up
    assert n.tolist() == [SR] and up.shape == (1, SR)
    assert abs(dominant_hz(up[0, : int(SR / 1.5)]) - 1000 * 2 ** (7 / 12)) <= 2
    tiny, _ = effect("pitch", x, pitch_cents=(2.0, 2.0))  # USB's range: almost nothing
    drift = (tiny - x).abs()
    assert drift[0, :20].max() < 0.01 < 0.1 < drift[0, -500:].max()  # a slowly growing shift
    assert dominant_hz(tiny[0]) == 1001.0  # 1000 Hz * 2 ** (2 / 1200) = 1001.16 Hz


def test_usb_reverb_is_wet_only_and_keeps_the_length() -> None:
    x = torch.zeros(2, SR)
    x[:, 1000:1100] = tone(500, 100 / SR)  # a short burst
    wet, n = effect("reverb", x, reverb_rt60=0.3)
    assert n.tolist() == [1100, 1100]  # the clip ends where the audio ended; tail cut
    assert torch.all(wet[:, 1100:] == 0) and wet[:, 1000:1100].abs().max() > 0
    assert not torch.allclose(wet[:, 1000:1100], x[:, 1000:1100], atol=0.05)  # no dry path
    assert not torch.equal(wet[0], wet[1])  # each sample its own impulse response
    long = torch.zeros(1, SR)
    long[0, :100] = tone(500, 100 / SR)
    long[0, -1] = 1e-3  # keep the clip one second long
    tail, _ = effect("reverb", long, reverb_rt60=0.3)
    energy = [tail[0, a : a + 1600].pow(2).sum() for a in (100, 3300, 6500)]
    assert energy[0] > energy[1] > energy[2] > 0  # an exponentially decaying tail


def test_usb_effects_compose_in_order_and_validate() -> None:
    x = tone(1000, 1.0)[None].repeat(4, 1)
    both, n = usb_effects(x, gen(0), effects=("speed",), effects_per_sample=2, speed=(2.0, 2.0))
    assert n.tolist() == [SR // 4] * 4  # two draws of speed x2
    assert abs(dominant_hz(both[0, : SR // 4]) - 4000) <= 4
    none, n = usb_effects(x, gen(0), effects_per_sample=0)
    assert torch.equal(none, x) and n.tolist() == [SR] * 4
    with pytest.raises(ValueError, match="unknown or no effects"):
        usb_effects(x, gen(0), effects=("chorus",))
    with pytest.raises(ValueError, match="features"):
        build_audio_views(features="mfcc")
    with pytest.raises(ValueError, match="strong_effects"):
        build_audio_views(strong_effects="sox")
    with pytest.raises(ValueError, match="unknown or no effects"):
        build_audio_views(strong_effects="usb", usb_effects_pool=("flanger",))


def test_sinc_resample_matches_a_resampled_tone() -> None:
    x = tone(3000, 1.0)[None]
    out = sinc_resample(x, torch.tensor([1.5]), torch.tensor([SR * 2 // 3]), SR)
    want = tone(4500, 1.0)[: SR * 2 // 3]
    assert (out[0, 500 : SR * 2 // 3 - 500] - want[500:-500]).abs().max() < 0.02
    assert torch.all(out[0, SR * 2 // 3 :] == 0)


def test_speed_width_rule_off_the_cpu_changes_results_by_rounding_only(monkeypatch) -> None:
    """On an accelerator the width after a slow-down is the host-side bound ceil(T / s), not
    the longest slowed clip (reading it would sync): the extra columns are zeros past every
    clip's end, so the views agree with the CPU rule up to float rounding (a later reverb's
    FFT size may grow)."""
    from semibench.augment import audio

    x = clips(batch=16, length=12000)
    x[1::2, 7000:] = 0  # clips of different lengths
    views = build_audio_views(crop_seconds=0.5, reverb_rt60=0.2, **USB)
    exact = [views["strong"](x, gen(s)) for s in range(12)]
    cpu_rule = audio._grown_width
    widths: list[tuple[int, int]] = []

    def accelerator_rule(width: int, new_lengths: torch.Tensor, steps: torch.Tensor) -> int:
        bound = cpu_rule(width, new_lengths.to("meta"), steps)  # the branch for non-CPU data
        widths.append((cpu_rule(width, new_lengths, steps), bound))
        return bound

    monkeypatch.setattr(audio, "_grown_width", accelerator_rule)
    for s, want in enumerate(exact):
        torch.testing.assert_close(views["strong"](x, gen(s)), want, rtol=0, atol=1e-5)
    assert all(exact_width <= bound for exact_width, bound in widths)
    assert any(exact_width < bound for exact_width, bound in widths)  # the rule was exercised
