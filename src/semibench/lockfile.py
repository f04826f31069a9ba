"""The committed dependency lock (``requirements/lock.txt``), read without the network.

``make lock`` writes the lock with uv from ``pyproject.toml``; ``make install`` installs exactly
it. This module answers the two questions that keep them honest: does the lock still say what
``pyproject.toml`` asks for, and is the environment we run in the one the lock describes? An ABI
break such as torchaudio 2.11.1 next to torch 2.11.0 then shows up as one named mismatch instead
of pipeline jobs dying on an import.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path("requirements") / "lock.txt"
NO_DEPS_LOCK = Path("requirements") / "no-deps.txt"
PROJECT_ROOT = "semibench (pyproject.toml)"


@dataclass(frozen=True)
class Locked:
    """One pinned line of a lock: name, exact version, the platforms it applies to, its parents."""

    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    via: tuple[str, ...] = field(default=())

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        return self.marker is None or self.marker.evaluate(environment)


def parse_lock(path: Path) -> list[Locked]:
    """Entries of a uv/pip-compile lock with hashes and ``# via`` annotations."""
    entries: list[Locked] = []
    lines = Path(path).read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#") or line.startswith(" "):
            i += 1
            continue
        spec = line
        while spec.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            spec = spec.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        via: list[str] = []
        while i < len(lines) and lines[i].startswith("    #"):
            text = lines[i].strip().lstrip("#").strip()
            via.append(text.removeprefix("via").strip())
            i += 1
        hashes = tuple(re.findall(r"--hash=(\S+)", spec))
        req = Requirement(re.sub(r"\s--hash=\S+", "", spec).strip())
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or len(req.specifier) != 1:
            raise ValueError(f"{path}: {req.name} is not pinned to one exact version ({req})")
        entries.append(Locked(canonicalize_name(req.name), pins[0].version, req.marker, hashes,
                              tuple(v for v in via if v)))
    return entries


def project_requirements(pyproject: Path) -> list[Requirement]:
    """Every requirement of ``pyproject.toml``: dependencies and all optional extras."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    reqs = [Requirement(r) for r in project.get("dependencies", [])]
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(Requirement(r) for r in extra)
    return reqs


def _for_this_python(entries: list[Locked], environment: dict[str, str] | None) -> dict[str, Locked]:
    out: dict[str, Locked] = {}
    for entry in entries:
        if entry.applies(environment):
            out[entry.name] = entry
    return out


def lock_vs_pyproject(repo: Path, environment: dict[str, str] | None = None) -> list[str]:
    """Why the committed lock no longer belongs to ``pyproject.toml`` (empty when it does)."""
    entries = parse_lock(repo / LOCK)
    locked = _for_this_python(entries, environment)
    problems: list[str] = []
    wanted = project_requirements(repo / "pyproject.toml")
    wanted_names = {canonicalize_name(r.name) for r in wanted}
    for req in wanted:
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        if name not in locked:
            problems.append(f"{req} is in pyproject.toml but not in {LOCK}")
        elif not req.specifier.contains(locked[name].version, prereleases=True):
            problems.append(f"{req} in pyproject.toml, but {LOCK} pins {name}=={locked[name].version}")
    roots = {e.name for e in entries if any(v.startswith(PROJECT_ROOT) for v in e.via)}
    for name in sorted(roots - wanted_names):
        problems.append(f"{LOCK} pins {name} for pyproject.toml, which no longer asks for it")
    for entry in entries:
        if not entry.hashes:
            problems.append(f"{LOCK}: {entry.name} has no hash")
        if not entry.via:
            problems.append(f"{LOCK}: {entry.name} says nothing about what needs it")
    return problems


def installed_vs_lock(repo: Path, environment: dict[str, str] | None = None) -> list[str]:
    """Where the running environment differs from the lock (empty when it is the locked one)."""
    problems: list[str] = []
    for lock in (LOCK, NO_DEPS_LOCK):
        for entry in _for_this_python(parse_lock(repo / lock), environment).values():
            try:
                have = metadata.version(entry.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{entry.name}=={entry.version} is locked but not installed")
                continue
            if have != entry.version:
                problems.append(f"{entry.name} {have} is installed, {lock} pins {entry.version}")
    return problems


def conda_env(repo: Path) -> str:
    """``envs/semibench.yaml`` for ``--use-conda``: the same exact pins as the lock.

    Hashes stay in the lock: conda hands these lines to pip one per line, and the post-deploy
    script adds the no-deps packages and SemiBench itself.
    """
    lines = [
        "# Written by `make lock` from requirements/lock.txt (do not edit; tests/test_lock.py",
        "# checks it). For `snakemake --use-conda`; `make install` uses the lock directly.",
        "name: semibench",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    for entry in parse_lock(repo / LOCK):
        marker = f" ; {entry.marker}" if entry.marker is not None else ""
        lines.append(f"      - '{entry.name}=={entry.version}{marker}'")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m semibench.lockfile check|conda-env [repo]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else "check"
    repo = Path(args[0] if args else ".")
    if command == "conda-env":
        sys.stdout.write(conda_env(repo))
        return 0
    if command != "check":
        print(f"usage: python -m semibench.lockfile check|conda-env [repo] (not {command!r})",
              file=sys.stderr)
        return 2
    problems = lock_vs_pyproject(repo) + installed_vs_lock(repo)
    for problem in problems:
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        print("lock: run `make install` (or `make lock` after editing pyproject.toml)",
              file=sys.stderr)
        return 1
    print(f"lock: environment matches {LOCK}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
