"""What a run's result belongs to: its inputs (settings, data, split, back-translations,
SemiBench's version and code) and the versions of the packages it ran with. A checkpoint
resumes only under equal inputs; ``metrics.json`` records them.

:func:`source_digest` is the one digest of SemiBench's source: the run inputs use it, and so
does the workflow's plan cache (:mod:`semibench.workflow_plan`). Light on purpose (no torch).
"""

from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from semibench.io import sha256_file

#: the package directory whose files make up SemiBench's code
PACKAGE = Path(__file__).resolve().parents[1]
#: the files of the package that count: source, and the data files it reads (schemas,
#: published tables, calibration, report templates)
SOURCE_SUFFIXES = frozenset({".py", ".json", ".yaml", ".csv", ".j2"})


def source_digest(package: Path = PACKAGE) -> str:
    """SHA-256 over the package's source and data files (relative names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes()
                          + b"\0")
    return digest.hexdigest()


@functools.cache
def code_digest() -> str:
    """:func:`source_digest` of this SemiBench, once per process: a code change is a change
    of inputs."""
    return source_digest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("semibench", "torch", "torchvision", "torchaudio", "timm", "transformers", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def run_inputs(run: dict[str, Any], data_sha256: str, split_path: Path,
               backtranslations: Path | None) -> dict[str, Any]:
    """Everything a run's result depends on; a checkpoint resumes only under equal inputs."""
    return {
        "settings": run,
        "data_sha256": data_sha256,
        "split_sha256": sha256_file(split_path),
        "backtranslations_sha256": sha256_file(backtranslations) if backtranslations else None,
        "semibench_version": package_versions()["semibench"],
        "semibench_code_sha256": code_digest(),
    }


_INPUT_NAMES = {
    "settings": "the run's settings", "data_sha256": "the prepared data",
    "split_sha256": "the split file", "backtranslations_sha256": "the back-translations",
    "semibench_version": "the SemiBench version", "semibench_code_sha256": "SemiBench's code",
}


def inputs_differ(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """"" if a checkpoint with inputs ``old`` may be resumed under ``new``; else why not."""
    if old is None:
        return "it records no inputs (written by an older SemiBench)"
    changed = [_INPUT_NAMES.get(k, k) for k in new if old.get(k) != new[k]]
    if not changed:
        return ""
    if "the run's settings" in changed:
        keys = sorted(k for k in set(old["settings"]) | set(new["settings"])
                      if old["settings"].get(k) != new["settings"].get(k))
        changed[changed.index("the run's settings")] = f"the run's settings ({', '.join(keys)})"
    return f"{' and '.join(changed)} changed since it was written"
