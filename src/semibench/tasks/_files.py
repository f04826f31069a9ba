"""The user's own data, declared in the config with ``from_files``: the declaration, listing the
folders and tables it names, and the checks that need no decoding.

Layouts: images and audio are ImageFolder-style (``train/<class>/**/<file>``; an optional
``unlabelled`` folder of files in any sub-folders; ``test/<class>/...``); text is one table
(CSV, TSV or JSON Lines) per role, with a text and a label column, where an empty label marks
an unlabelled row. Listings are sorted by path, so the prepared order does not depend on the
file system. Every check here raises ``FileTaskError`` with one line that names the config key,
so the same message serves the config check and the fetch/prepare jobs.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError

#: files in a class folder with another suffix are ignored (and counted); "any format" means
#: any that the decoders read, so these lists are what PIL and libsndfile (semibench.audio_io) take
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus",
                            ".mp3", ".aif", ".aiff", ".aifc"})
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl"}
#: operating-system litter that is never data
JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
#: how many names a one-line error lists before "..."
SHOW = 3

DOMAIN_KEYS = {
    "image": {"image_size", "channels"},
    "text": {"text_column", "label_column", "max_chars"},
    "audio": {"sample_rate", "seconds"},
}
#: what fetch does with samples of the same content (bytes; a table's whitespace-normalised
#: text) under two classes in train, and with test samples that are also in train or
#: unlabelled; the first value is the default (test_duplicates: per domain, TEST_DUPLICATES)
POLICIES = {"conflicting_labels": ("refuse", "drop", "first"),
            "test_duplicates": ("warn", "drop", "refuse")}
#: short texts ("great!") recur in real tables; a file in both train and test is a mistake
TEST_DUPLICATES = {"text": "warn", "image": "refuse", "audio": "refuse"}


class FileTaskError(SemiBenchError, ValueError):
    """A task declared with ``from_files`` cannot be built from its files; one line."""


@functools.cache
def image_suffixes() -> frozenset[str]:
    """Every suffix PIL has a reader for (its plugins register them when ``init`` runs)."""
    from PIL import Image

    Image.init()
    return frozenset(s for s, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _names(items: list[str]) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > SHOW else ""
    return ", ".join(items[:SHOW]) + more


@dataclass(frozen=True)
class FileSource:
    """A validated ``from_files`` declaration (the schema documents each key)."""

    domain: str
    train: str
    test: str | None = None
    unlabelled: str | None = None
    test_fraction: float | None = None
    classes: tuple[str, ...] | None = None
    val_per_class: int = 5
    image_size: int = 32
    channels: int = 3
    text_column: str = "text"
    label_column: str = "label"
    max_chars: int = 2000
    sample_rate: int = 16_000
    seconds: float = 1.0
    conflicting_labels: str = "refuse"
    #: None: the domain's default (TEST_DUPLICATES), filled in by from_dict
    test_duplicates: str | None = None
    #: the config key, for error messages (not part of the declaration)
    where: str = field(default="from_files", compare=False)
    #: the folder relative paths are read from, absolute: the config file's (None: the working
    #: directory). Not part of the declaration, which keeps the paths as written.
    base: str | None = None

    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str,
                  base: str | Path | None = None) -> FileSource:
        """Check what the schema cannot (keys of another domain, test vs test_fraction), and
        what it can for the jobs, which get no schema (the policies)."""
        known = {f.name for f in fields(cls)} - {"where", "base"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise FileTaskError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                                f"{', '.join(sorted(known))}")
        domain = spec.get("domain")
        if domain not in DOMAIN_KEYS:
            raise FileTaskError(f"{where}.domain={domain!r}: allowed values: image, text, audio")
        if "train" not in spec:
            raise FileTaskError(f"{where}: 'train' is a required property")
        for other, keys in DOMAIN_KEYS.items():
            wrong = sorted(keys & set(spec)) if other != domain else []
            if wrong:
                raise FileTaskError(f"{where}.{wrong[0]}: only for domain {other}, not {domain}")
        if spec.get("test") is not None and spec.get("test_fraction") is not None:
            raise FileTaskError(f"{where}: give test (a {'table' if domain == 'text' else 'folder'})"
                                " or test_fraction (a hold-out of train), not both")
        for key, allowed in POLICIES.items():
            if spec.get(key) is not None and spec[key] not in allowed:
                raise FileTaskError(f"{where}.{key}={spec[key]!r}: allowed values: "
                                    f"{', '.join(allowed)}")
        values = dict(spec)
        values.setdefault("conflicting_labels", POLICIES["conflicting_labels"][0])
        if values.get("test_duplicates") is None:
            values["test_duplicates"] = TEST_DUPLICATES[domain]
        if values.get("classes") is not None:
            values["classes"] = tuple(str(c) for c in values["classes"])
            if len(set(values["classes"])) != len(values["classes"]):
                raise FileTaskError(f"{where}.classes: names a class twice")
        if values.get("test") is None and values.get("test_fraction") is None:
            values["test_fraction"] = 0.2
        source = cls(**values, where=where,
                     base=None if base is None else str(Path(base).expanduser().resolve()))
        if source.test_fraction is not None and not 0.0 < source.test_fraction < 1.0:
            raise FileTaskError(f"{where}.test_fraction={source.test_fraction}: must be in (0, 1)")
        return source

    def declaration(self) -> dict[str, Any]:
        """The declaration as JSON (what the fetch rule tracks and the manifest records)."""
        out = asdict(self)
        out.pop("where")
        out.pop("base")
        for other, keys in DOMAIN_KEYS.items():  # another domain's keys mean nothing here
            if other != self.domain:
                for key in keys:
                    out.pop(key)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out

    def path(self, role: str) -> Path | None:
        """Where a role's folder or table is: a relative path joined to ``base``."""
        value = getattr(self, role)
        if value is None:
            return None
        return (Path(self.base or ".") / Path(value).expanduser()).resolve()


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class Item:
    """One sample's origin: its role (train/test/unlabelled), its path under that role's root
    (folders) or its row number (tables), and its class name (None: no label)."""

    role: str
    rel: str
    label: str | None
    text: str | None = None  # tables only


@dataclass
class Listing:
    """What the declared paths hold, before anything is decoded."""

    classes: tuple[str, ...]
    items: list[Item]
    #: files skipped because of their suffix: role/rel
    ignored: list[str]
    #: role -> the file (table) or folder it came from
    roots: dict[str, str]

    def of(self, role: str) -> list[Item]:
        return [it for it in self.items if it.role == role]

    def train_counts(self) -> dict[str, int]:
        counts = Counter(it.label for it in self.items if it.role == "train" and it.label)
        return {c: counts.get(c, 0) for c in self.classes}


def _existing(source: FileSource, role: str, *, folder: bool) -> Path | None:
    path = source.path(role)
    if path is None:
        return None
    key = f"{source.where}.{role}={getattr(source, role)!r}"
    if not path.exists():
        raise FileTaskError(f"{key}: no such {'folder' if folder else 'file'} ({path})")
    if folder and not path.is_dir():
        raise FileTaskError(f"{key}: must be a folder (one sub-folder per class), not a file")
    if not folder and not path.is_file():
        raise FileTaskError(f"{key}: must be a table file (.csv, .tsv, .jsonl), not a folder")
    return path


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in JUNK_NAMES


def walk_files(root: Path) -> Iterator[str]:
    """Every visible file under ``root`` as a POSIX path relative to it, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        base = Path(dirpath).relative_to(root)
        found += [(base / f).as_posix() for f in filenames if _visible(f)]
    return iter(sorted(found))


def _class_folders(source: FileSource, role: str, root: Path, suffixes: frozenset[str],
                   ignored: list[str]) -> list[Item]:
    kind = "image" if source.domain == "image" else "audio"
    items, loose, empty = [], [], []
    for entry in sorted(root.iterdir()):
        if not _visible(entry.name):
            continue
        if entry.is_file():
            loose.append(entry.name)
            continue
        found = 0
        for rel in walk_files(entry):
            if Path(rel).suffix.lower() in suffixes:
                items.append(Item(role, f"{entry.name}/{rel}", entry.name))
                found += 1
            else:
                ignored.append(f"{role}/{entry.name}/{rel}")
        if not found:
            empty.append(entry.name)
    key = f"{source.where}.{role}"
    if loose:
        raise FileTaskError(f"{key}: {len(loose)} file(s) outside a class folder ({_names(loose)});"
                            f" put each {kind} file in the folder of its class")
    if empty:
        raise FileTaskError(f"{key}: empty class folder(s) {_names(empty)} (no {kind} files); "
                            "remove them or add files")
    if not items:
        raise FileTaskError(f"{key}: no class folders in {root}")
    return items


def _loose_files(role: str, root: Path, suffixes: frozenset[str],
                 ignored: list[str]) -> list[Item]:
    items = []
    for rel in walk_files(root):
        if Path(rel).suffix.lower() in suffixes:
            items.append(Item(role, rel, None))
        else:
            ignored.append(f"{role}/{rel}")
    return items


def table_format(source: FileSource, role: str, path: Path) -> str:
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise FileTaskError(f"{source.where}.{role}={getattr(source, role)!r}: unknown table "
                            f"suffix {path.suffix!r}; allowed: {', '.join(TABLE_SUFFIXES)}")
    return fmt


def _rows(source: FileSource, role: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a table; a malformed line is one error naming it."""
    fmt = table_format(source, role, path)
    key = f"{source.where}.{role}"
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            if fmt == "jsonl":
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise FileTaskError(f"{key}: {path.name}:{number}: not JSON ({err.msg})"
                                            ) from None
                    if not isinstance(row, dict):
                        raise FileTaskError(f"{key}: {path.name}:{number}: not a JSON object")
                    yield number, row
            else:
                reader = csv.DictReader(handle, delimiter="," if fmt == "csv" else "\t")
                for row in reader:
                    if None in row:
                        raise FileTaskError(f"{key}: {path.name}:{reader.line_num}: more fields "
                                            "than the header has")
                    yield reader.line_num, row
    except UnicodeDecodeError as err:
        raise FileTaskError(f"{key}: {path.name} is not UTF-8 text ({err.reason} at byte "
                            f"{err.start})") from None
    except csv.Error as err:
        raise FileTaskError(f"{key}: {path.name}: malformed {fmt.upper()} ({err})") from None


def _label(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _table(source: FileSource, role: str, path: Path) -> list[Item]:
    items = []
    key = f"{source.where}.{role}"
    for number, row in _rows(source, role, path):
        if source.text_column not in row:
            raise FileTaskError(f"{key}: {path.name} has no column {source.text_column!r} "
                                f"(text_column); it has: {', '.join(map(str, row))}")
        wants_label = role != "unlabelled"
        if wants_label and source.label_column not in row:
            raise FileTaskError(f"{key}: {path.name} has no column {source.label_column!r} "
                                f"(label_column); it has: {', '.join(map(str, row))}")
        text = row[source.text_column]
        label = _label(row.get(source.label_column)) if wants_label else None
        if role == "test" and label is None:
            raise FileTaskError(f"{key}: {path.name}:{number}: a test row without a label")
        items.append(Item(role, str(number), label,
                          "" if text is None else str(text)[: source.max_chars]))
    if not items:
        raise FileTaskError(f"{key}: {path.name} has no rows")
    return items


def list_files(source: FileSource) -> Listing:
    """List (never decode) what the declaration names, and check the layout and classes."""
    folder = source.domain != "text"
    roots = {role: _existing(source, role, folder=folder) for role in ("train", "test")}
    roots["unlabelled"] = _existing(source, "unlabelled", folder=folder)
    ignored: list[str] = []
    items: list[Item] = []
    suffixes = image_suffixes() if source.domain == "image" else AUDIO_SUFFIXES
    for role, root in roots.items():
        if root is None:
            continue
        if not folder:
            table_format(source, role, root)
            items += _table(source, role, root)
        elif role == "unlabelled":
            items += _loose_files(role, root, suffixes, ignored)
        else:
            items += _class_folders(source, role, root, suffixes, ignored)
    classes = _classes(source, items)
    return Listing(classes, items, ignored,
                   {role: str(root) for role, root in roots.items() if root is not None})


def _classes(source: FileSource, items: list[Item]) -> tuple[str, ...]:
    found = sorted({it.label for it in items if it.role == "train" and it.label is not None})
    if not found:
        raise FileTaskError(f"{source.where}.train: no labelled samples")
    if source.classes is not None:
        missing = sorted(set(source.classes) - set(found))
        extra = sorted(set(found) - set(source.classes))
        if extra:
            raise FileTaskError(f"{source.where}.train: class(es) {_names(extra)} are not in "
                                f"{source.where}.classes")
        if missing:
            raise FileTaskError(f"{source.where}.classes: {_names(missing)} have no labelled "
                                "training samples")
        found = list(source.classes)
    if len(found) < 2:
        raise FileTaskError(f"{source.where}.train: one class ({found[0]}); a classifier needs "
                            "at least two")
    unknown = sorted({it.label for it in items if it.role == "test"} - set(found))
    if unknown:
        raise FileTaskError(f"{source.where}.test: class(es) {_names(unknown)} are not in train "
                            f"(train has: {_names(found)})")
    return tuple(found)


@functools.lru_cache(maxsize=64)
def _cached_listing(declaration: str, stamp: tuple[tuple[str, int], ...],
                    where: str, base: str | None) -> Listing:
    return list_files(FileSource(**{**_from_json(declaration), "where": where, "base": base}))


def _from_json(declaration: str) -> dict[str, Any]:
    values = json.loads(declaration)
    if values.get("classes") is not None:
        values["classes"] = tuple(values["classes"])
    return values


def cached_listing(source: FileSource) -> Listing:
    """``list_files``, remembered while the declared roots are unchanged: a workflow asks for a
    task once per job it plans."""
    stamp = []
    for role in ("train", "test", "unlabelled"):
        path = source.path(role)
        try:
            stamp.append((str(path), path.stat().st_mtime_ns if path else 0))
        except OSError:
            stamp.append((str(path), -1))
    return _cached_listing(json.dumps(source.declaration(), sort_keys=True), tuple(stamp),
                           source.where, source.base)


# --------------------------------------------------------------------------- checks


def held_out(count: int, fraction: float | None) -> int:
    """Samples of a class that a ``test_fraction`` hold-out takes (``stratified_holdout``)."""
    return 0 if fraction is None else int(round(fraction * count))


def check_budgets(source: FileSource, listing: Listing, budgets: list[int], where: str) -> None:
    """Each class needs validation + labelled samples and one left unlabelled (the split rule)."""
    counts = {c: n - held_out(n, source.test_fraction) for c, n in listing.train_counts().items()}
    num_classes = len(listing.classes)
    for i, n in enumerate(budgets):
        if n % num_classes:
            continue  # the generic check says it: a multiple of the number of classes
        per_class = n // num_classes
        need = source.val_per_class + per_class + 1
        short = sorted(c for c, k in counts.items() if k < need)
        if short:
            c = short[0]
            raise FileTaskError(
                f"{where}.num_labels[{i}]={n}: class {c!r} has {counts[c]} labelled training "
                f"samples{' after the test hold-out' if source.test_fraction else ''}; "
                f"{source.val_per_class} validation + {per_class} labelled + 1 unlabelled need "
                f"{need}" + (f" ({len(short)} classes are short)" if len(short) > 1 else ""))


def source_paths(source: FileSource) -> list[str]:
    """What a workflow watches: the tables, or each root and class folder (a file added to or
    removed from a folder changes the folder's time stamp)."""
    paths = []
    for role in ("train", "test", "unlabelled"):
        root = source.path(role)
        if root is None:
            continue
        paths.append(str(root))
        if root.is_dir():
            paths += [str(p) for p in sorted(root.iterdir()) if p.is_dir() and _visible(p.name)]
    return paths


__all__ = ["FileSource", "FileTaskError", "Item", "Listing", "check_budgets", "cached_listing",
           "list_files", "source_paths"]
