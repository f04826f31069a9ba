"""The report page's figures: each named PNG placed by its file name (a task's figures in its
sections, critical-difference diagrams with their statistics, the cost front with the cost,
anything else under "Other figures") and embedded as a data URI with its caption."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semibench.report.layout import CD_FIGURE, COST_FIGURE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: what each kind of figure shows (the same words as workflow/report/*.rst)
CAPTIONS: dict[str, str] = {
    "errors": "Test error (%) of the checkpoint with the lowest validation error: bars are the "
              "mean over seeds, whiskers one sample standard deviation, dots the seeds.",
    "curves": "Validation and test error (%) at every evaluation; line: mean over seeds, band: "
              "lowest to highest seed.",
    "pseudolabels": "Pseudo-label quantity (mask ratio: share of unlabelled samples whose "
                    "pseudo-label passes the mask) and quality (accuracy of those that pass) "
                    "over training; line: mean over seeds, band: lowest to highest seed.",
    "per_class": "Test accuracy (%) per class at the best-validation checkpoint, mean over "
                 "seeds: where the errors are.",
    "sensitivity": "Sensitivity to each swept hyper-parameter: mean test error (%) at the "
                   "best-validation checkpoint against its value, a line per algorithm and "
                   "label budget, whiskers one sample standard deviation over the runs at the "
                   "value (its seeds, and the other swept values where several are swept).",
    "cd": "Critical-difference diagram (Demšar 2006): the mean rank of each algorithm over the "
          "settings (1 = fewest errors); a bar joins algorithms the Nemenyi test cannot tell "
          "apart; CD is the critical difference of mean ranks.",
    "cost": "Mean test error against mean training time per run, one point per algorithm and "
            "label budget; the dashed line is the Pareto front (fully supervised left out).",
    "other": "A figure of this benchmark.",
}


@dataclass
class FigureView:
    id: str
    name: str
    #: a data URI (one self-contained page) or the file's path relative to the page
    src: str
    width: int
    height: int
    caption: str
    alt: str = ""
    #: "eager" for an embedded figure; "lazy" for a file, fetched as it nears the screen
    loading: str = "eager"


@dataclass
class TaskFigures:
    id: str
    name: str
    domain: str = ""
    figures: list[FigureView] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "x"


def _png_size(data: bytes, path: Path) -> tuple[int, int]:
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def figure_view(path: Path, kind: str, href: str | None = None) -> FigureView:
    """A figure embedded as a data URI, or, with ``href`` (its path relative to the page),
    linked and loaded lazily (only its PNG header is read here, for its size)."""
    if href is not None:
        with path.open("rb") as handle:
            width, height = _png_size(handle.read(24), path)
        return FigureView(id=slug(path.stem), name=path.stem, alt=path.stem, src=href,
                          width=width, height=height, caption=CAPTIONS[kind], loading="lazy")
    data = path.read_bytes()
    width, height = _png_size(data, path)
    return FigureView(id=slug(path.stem), name=path.stem, alt=path.stem,
                      src="data:image/png;base64," + base64.b64encode(data).decode("ascii"),
                      width=width, height=height, caption=CAPTIONS[kind])


def classify_figures(paths: Sequence[Path], tasks: Sequence[str],
                     groups: Sequence[str]) -> dict[tuple[str, str], Path | list[Path]]:
    """Place each named figure by its file name: (kind, task or group) -> path; anything
    else under ("other", "") so that no given figure is dropped."""
    placed: dict[tuple[str, str], Any] = {("other", ""): []}
    suffixes = {"": "errors", "_curves": "curves", "_pseudolabels": "pseudolabels",
                "_per_class": "per_class", "_sensitivity": "sensitivity"}
    for path in paths:
        stem = path.stem
        key = None
        for task in sorted(tasks, key=len, reverse=True):
            for suffix, kind in suffixes.items():
                if stem == f"{task}{suffix}":
                    key = (kind, task)
                    break
            if key:
                break
        if key is None:
            key = next((("cd", g) for g in groups if stem == CD_FIGURE.format(group=g)), None)
        if key is None and stem == COST_FIGURE:
            key = ("cost", "")
        if key is None or key in placed:
            placed[("other", "")].append(path)
        else:
            placed[key] = path
    return placed
