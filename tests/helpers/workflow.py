"""Running the Snakemake workflow of this repository in a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """``snakemake`` on this repository's Snakefile in ``workdir``, two cores, output captured."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def train_jobs(dry_run_output: str) -> list[tuple[str, str, str]]:
    """(task, algorithm, seed) of every train job a dry run lists."""
    return sorted(re.findall(r"wildcards: task=(\w+), num_labels=\d+, algorithm=(\w+), "
                             r"seed=(\d+)", dry_run_output))
