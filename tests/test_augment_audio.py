"""Audio views: shapes, determinism of eval, reproducibility of the random views, effects."""

from __future__ import annotations

import math

import pytest
import torch

from semibench.augment import build_views
from semibench.augment.audio import build_audio_views
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
