"""The environment that was tested is the one a user gets: pyproject.toml, the committed lock,
the conda environment and the installed packages agree, and the heavy libraries load together."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement

from semibench import lockfile


def test_lock_belongs_to_pyproject(repo_root):
    assert lockfile.lock_vs_pyproject(repo_root) == []


def test_every_line_of_the_lock_is_exact_and_hashed(repo_root):
    for lock in (lockfile.LOCK, lockfile.NO_DEPS_LOCK):
        entries = lockfile.parse_lock(repo_root / lock)
        assert entries and all(e.hashes and all(h.startswith("sha256:") for h in e.hashes)
                               for e in entries)
    names = {e.name for e in lockfile.parse_lock(repo_root / lockfile.LOCK)}
    # the torch family is pinned together: torchaudio 2.11.1 beside torch 2.11.0 does not load
    pins = {e.name: e.version for e in lockfile.parse_lock(repo_root / lockfile.LOCK)}
    assert (pins["torch"], pins["torchvision"], pins["torchaudio"]) == ("2.11.0", "0.26.0", "2.11.0")
    assert {"snakemake-executor-plugin-slurm", "pytest", "uv"} <= names  # extras are locked too


def test_pyproject_drift_is_caught(repo_root, tmp_path):
    """Editing pyproject.toml without `make lock` fails, whichever way it drifts."""
    (tmp_path / "requirements").mkdir()
    for lock in (lockfile.LOCK, lockfile.NO_DEPS_LOCK):
        (tmp_path / lock).write_text((repo_root / lock).read_text())
    original = (repo_root / "pyproject.toml").read_text()
    cases = {
        '"timm>=1.0"': ('"timm>=1.0", "einops>=0.8"', "einops>=0.8 is in pyproject.toml but not"),
        '"torchaudio==2.11.0"': ('"torchaudio==2.11.1"', "pins torchaudio==2.11.0"),
        '    "sacremoses>=0.1",\n': ("", "pins sacremoses for pyproject.toml, which no longer"),
    }
    for old, (new, expected) in cases.items():
        assert old in original
        (tmp_path / "pyproject.toml").write_text(original.replace(old, new))
        problems = lockfile.lock_vs_pyproject(tmp_path)
        assert any(expected in p for p in problems), (old, problems)


def test_installed_environment_is_the_locked_one(repo_root):
    assert lockfile.installed_vs_lock(repo_root) == []


def test_installed_mismatch_is_named(repo_root, tmp_path):
    (tmp_path / "requirements").mkdir()
    text = (repo_root / lockfile.LOCK).read_text().replace("\ntorchaudio==2.11.0", "\ntorchaudio==2.11.1")
    (tmp_path / lockfile.LOCK).write_text(text)
    (tmp_path / lockfile.NO_DEPS_LOCK).write_text((repo_root / lockfile.NO_DEPS_LOCK).read_text())
    assert lockfile.installed_vs_lock(tmp_path) == [
        f"torchaudio 2.11.0 is installed, {lockfile.LOCK} pins 2.11.1"]


def test_conda_environment_is_derived_from_the_lock(repo_root):
    text = (repo_root / "envs" / "semibench.yaml").read_text()
    assert text == lockfile.conda_env(repo_root), "run `make lock` to rewrite envs/semibench.yaml"
    env = yaml.safe_load(text)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {Requirement(line).name: str(Requirement(line).specifier) for line in pip}
    assert pins["torch"] == "==2.11.0" and pins["torchaudio"] == "==2.11.0"


def test_makefile_installs_the_lock_only(repo_root):
    makefile = (repo_root / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile
    assert "--require-hashes --no-deps -r $(NO_DEPS_LOCK)" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert "pip install -e '.[" not in makefile  # nothing resolved at install time


@pytest.mark.timeout(300)
def test_heavy_dependencies_load_together():
    """One process imports every heavy library and touches their compiled parts: an ABI break
    (torchaudio's libtorchaudio.so against another torch) is this one failure, not dying jobs."""
    code = """
import torch, torchvision, torchaudio, timm, transformers, snakemake
import torchvision.ops, torchaudio.functional
from transformers import BertConfig, BertModel
x = torch.rand(1, 3, 8, 8)
torchvision.ops.nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
torchaudio.functional.resample(torch.rand(1, 160), 16000, 8000)
torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_mels=8)(torch.rand(1, 1600))
timm.create_model("resnet18", pretrained=False, num_classes=2).eval()(x)
BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                     intermediate_size=8, vocab_size=10))
print(torch.__version__, torchvision.__version__, torchaudio.__version__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [v.split("+")[0] for v in done.stdout.split()] == ["2.11.0", "0.26.0", "2.11.0"]
