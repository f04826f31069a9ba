"""The espeak-ng keyword task: registration, a tiny preparation and its reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semibench.io import ChecksumError, sha256_file
from semibench.tasks import TASKS, create_task, load_prepared
from semibench.tasks.keywords import ACCENTS, VARIANTS, SpokenKeywords


class TinyKeywords(SpokenKeywords):
    """Same task, a few clips per class, so that the tests stay fast."""

    clips_per_class_train = 3
    clips_per_class_test = 2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("keywords")
    task = TinyKeywords()
    task.fetch(root / "raw")
    task.prepare(root / "raw", root / "a")
    task.prepare(root / "raw", root / "b")
    return root / "raw", root / "a", root / "b"


def test_registered() -> None:
    assert "keywords" in TASKS
    task = create_task("keywords")
    assert isinstance(task, SpokenKeywords)
    assert task.domain == "audio"
    assert task.classes == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    assert task.label_budgets == (50, 100)
    assert task.backbone == "cnn_small"
    assert task.augment["sample_rate"] == 16000
    assert "espeak-ng" in task.source


def test_fetch_records_espeak(prepared: tuple[Path, Path, Path]) -> None:
    raw, _, _ = prepared
    manifest = json.loads((raw / "manifest.json").read_text())
    assert manifest["task"] == "keywords"
    assert manifest["files"] == {"espeak.json": sha256_file(raw / "espeak.json")}
    info = json.loads((raw / "espeak.json").read_text())
    assert info["sample_rate"] == 22050
    assert info["version"] != "unknown"
    assert info["variants"] == list(VARIANTS)
    assert info["accents"] == list(ACCENTS)
    assert sha256_file(info["library_path"]) == info["library_sha256"]


def test_prepared_format(prepared: tuple[Path, Path, Path]) -> None:
    _, out, _ = prepared
    assert (out / "data.npz").is_file() and (out / "meta.json").is_file()
    data = load_prepared(out)
    meta = data.meta
    assert meta["name"] == "keywords" and meta["domain"] == "audio"
    assert meta["sample_rate"] == 16000
    assert meta["num_train"] == 30 and meta["num_test"] == 20
    assert meta["classes"] == list(SpokenKeywords.classes)
    for x, y, per_class in ((data.train_x, data.train_y, 3), (data.test_x, data.test_y, 2)):
        assert x.dtype == np.float32 and x.shape == (10 * per_class, 16000)
        assert y.dtype == np.int64
        assert np.bincount(y, minlength=10).tolist() == [per_class] * 10
        assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
        peak = np.abs(x).max(axis=1)
        assert peak.min() > 0.05  # gain draws peaks in [-20, -1] dBFS
        # speech, not just noise: the loudest 100 ms carry far more energy than the quietest
        frames = (x[:, :16000].reshape(len(x), 10, 1600) ** 2).mean(axis=2)
        assert np.all(frames.max(axis=1) > 3 * frames.min(axis=1))
        assert len(np.unique(x, axis=0)) == len(x)  # no duplicated clip
    # the labels are shuffled, not sorted by class
    assert not np.all(np.diff(data.train_y) >= 0)


def test_speaker_split(prepared: tuple[Path, Path, Path]) -> None:
    _, out, _ = prepared
    meta = load_prepared(out).meta
    train, test = set(meta["train_variants"]), set(meta["test_variants"])
    assert train and test and not train & test
    assert train | test == set(VARIANTS)


def test_preparation_is_reproducible(prepared: tuple[Path, Path, Path]) -> None:
    _, a, b = prepared
    first, second = load_prepared(a), load_prepared(b)
    for key in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))
    assert first.meta["data_sha256"] == second.meta["data_sha256"]


def test_other_seed_gives_other_data(prepared: tuple[Path, Path, Path], tmp_path: Path) -> None:
    raw, a, _ = prepared

    class OtherSeed(TinyKeywords):
        seed = 7

    OtherSeed().prepare(raw, tmp_path)
    assert not np.array_equal(load_prepared(tmp_path).train_x, load_prepared(a).train_x)


def test_prepare_rejects_a_changed_raw_file(
    prepared: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    raw, _, _ = prepared
    copy = tmp_path / "raw"
    copy.mkdir()
    for name in ("manifest.json", "espeak.json"):
        (copy / name).write_bytes((raw / name).read_bytes())
    (copy / "espeak.json").write_text((raw / "espeak.json").read_text().replace("22050", "16000"))
    with pytest.raises(ChecksumError):
        TinyKeywords().prepare(copy, tmp_path / "out")
