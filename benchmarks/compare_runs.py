"""Compare two result trees run by run: a refactor must keep every recorded number.

    python benchmarks/compare_runs.py OLD/results/offline/runs NEW/results/offline/runs

Compares, for every run present in either tree, the ``best`` and ``last`` blocks of
``metrics.json`` and every column of ``curve.csv`` except elapsed time; wall times, versions,
digests and the settings' wire format are not results and are skipped. Exit status 1 if any run
is missing on one side or any recorded number differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

TIMING = {"elapsed_s", "step_time_s", "wall_time_s"}


def _runs(root: Path) -> dict[str, Path]:
    return {str(p.parent.relative_to(root)): p.parent for p in sorted(root.rglob("metrics.json"))}


def _curve(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "curve.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _results(run_dir: Path) -> dict[str, object]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"best": metrics.get("best"), "last": metrics.get("last"), "curve": _curve(run_dir)}


def compare(old: Path, new: Path) -> list[str]:
    """One line per difference (empty when every recorded number is equal)."""
    old_runs, new_runs = _runs(old), _runs(new)
    problems = [f"{r}: only in {old}" for r in sorted(old_runs.keys() - new_runs.keys())]
    problems += [f"{r}: only in {new}" for r in sorted(new_runs.keys() - old_runs.keys())]
    for run in sorted(old_runs.keys() & new_runs.keys()):
        a, b = _results(old_runs[run]), _results(new_runs[run])
        for part in ("best", "last", "curve"):
            if a[part] != b[part]:
                problems.append(f"{run}: {part} differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    problems = compare(args.old, args.new)
    total = len(_runs(args.old).keys() | _runs(args.new).keys())
    for line in problems:
        print(line)
    print(f"{total} runs compared, {len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
