"""The offline sources' loaders: real bundled files, checksums, prepared format."""

import json

import numpy as np
import pytest

from semibench.io import ChecksumError
from semibench.registry import UnknownNameError
from semibench.tasks import TASKS, create_task, load_prepared
from semibench.tasks.newsgroups import read_orange_tab


def test_registry_lists_offline_tasks_and_rejects_unknown():
    assert {"mnist", "newsgroups", "keywords"} <= set(TASKS.names())
    with pytest.raises(UnknownNameError, match="allowed: .*mnist"):
        create_task("cifar1000")


def test_mnist_prepared(prepared_mnist):
    data = load_prepared(prepared_mnist)
    assert data.train_x.shape == (4000, 1, 28, 28) and data.train_x.dtype == np.uint8
    assert data.test_x.shape == (1000, 1, 28, 28)
    assert np.bincount(data.train_y).tolist() == [400] * 10
    assert np.bincount(data.test_y).tolist() == [100] * 10
    assert data.train_x.max() == 255 and data.train_x.min() == 0
    meta = json.loads((prepared_mnist / "meta.json").read_text())
    assert meta["domain"] == "image" and meta["num_classes"] == 10
    assert meta["raw_checksums"] == {
        "mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
    }
    # no test image is also a training image (a real hold-out)
    train = {row.tobytes() for row in data.train_x.reshape(4000, -1)}
    assert sum(row.tobytes() in train for row in data.test_x.reshape(1000, -1)) < 5


def test_prepare_detects_corrupted_raw_file(tmp_path):
    task = create_task("mnist")
    task.fetch(tmp_path / "raw")
    raw = tmp_path / "raw" / "mnist_5k.csv.gz"
    raw.write_bytes(raw.read_bytes()[:1000])  # truncated
    with pytest.raises(ChecksumError, match="mismatch"):
        task.prepare(tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "meta.json").exists()


def test_newsgroups_prepared(tmp_path):
    task = create_task("newsgroups")
    task.fetch(tmp_path / "raw")
    task.prepare(tmp_path / "raw", tmp_path / "prepared")
    data = load_prepared(tmp_path / "prepared")
    assert data.train_x.dtype.kind == "U" and len(data.train_x) == 20 * task.train_per_class
    assert np.bincount(data.train_y).tolist() == [task.train_per_class] * 20
    assert np.bincount(data.test_y).tolist() == [task.test_per_class] * 20
    assert all(0 < len(t) <= task.max_chars for t in data.train_x)
    assert len(set(data.train_x.tolist())) > 0.95 * len(data.train_x)
    assert data.meta["classes"][16] == "talk.politics.guns"


def test_orange_tab_parser(tmp_path):
    p = tmp_path / "x.tab"
    p.write_text("Category\tText\nd\tstring\nclass\t\nsci.med\tdoctor said\tthing\n\nsci.space\tnasa\n")
    labels, texts = read_orange_tab(p)
    assert labels == ["sci.med", "sci.space"]
    assert texts == ["doctor said\tthing", "nasa"]
    p.write_text("Label\tBody\nd\tstring\nclass\t\n")
    with pytest.raises(ValueError, match="Category, Text"):
        read_orange_tab(p)
