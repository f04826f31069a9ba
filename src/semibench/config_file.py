"""A benchmark config read from its file, the same way by ``semibench check-config``, ``plan``,
``report --partial`` and the Snakefile (``workflow/rules/common.smk``), so that one file means
one benchmark whichever command reads it and from whichever working directory:

* strict YAML: a key written twice in one mapping is an error naming it and both lines (plain
  YAML keeps the last one silently, so an edit can vanish); an empty file is one line;
* no ``benchmark:``: the benchmark is named after the file (``my_data.yaml`` -> ``my_data``),
  so that a user's config never writes into the default benchmark's ``results/offline/`` and
  ``reports/offline/`` (``config/config.yaml`` names ``offline`` itself). A config given to
  ``semibench.config.check_config`` as a Python dict has no file and keeps the schema's default;
* relative paths (``plugins:`` files, ``from_files`` folders and tables) are read from the
  file's folder, :attr:`ConfigFile.base_dir`, not from the working directory. The config keeps
  them as written (so do the task's recorded declaration and the Snakemake rule's params: a
  results folder does not depend on where the checkout lives); they are joined to the folder
  only where files are read.

Imports nothing heavy: the Snakefile reads config files through here before it plans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from semibench.errors import SemiBenchError

__all__ = ["BENCHMARK_NAME", "ConfigFile", "ConfigFileError", "StrictLoader", "check_config_file",
           "default_benchmark", "for_workflow", "load_config_file", "parse_yaml", "read_yaml"]

#: the schema's pattern of ``benchmark`` (tests/test_config_file.py keeps the two equal)
BENCHMARK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
BENCHMARK_MAX = 100
_MERGE = "tag:yaml.org,2002:merge"


class ConfigFileError(SemiBenchError, ValueError):
    """A config file that cannot be read as a config: missing, unreadable, not YAML, a key
    given twice, empty. One line; ``line`` is set when it starts with ``FILE:LINE`` (printed
    without the command's prefix, as compilers write it, so that editors jump to it)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class DuplicateKeyError(yaml.YAMLError):
    """Raised by :class:`StrictLoader`; ``parse_yaml`` turns it into a ConfigFileError."""

    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


def _key_path(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping, naming the key (as a
    dotted path) and both lines. Merge keys (``<<: *defaults``) may still be overridden."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._check_keys(node, (), set())
        return self.construct_document(node)

    def _check_keys(self, node: yaml.Node, where: tuple[Any, ...], seen_nodes: set[int]) -> None:
        if id(node) in seen_nodes:  # an alias: checked where its anchor is
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_keys(item, (*where, i), seen_nodes)
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key: Any = None
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    key = self.construct_object(key_node)
                    line = key_node.start_mark.line + 1
                    if key in first:
                        raise DuplicateKeyError(_key_path((*where, key)), line, first[key])
                    first[key] = line
                self._check_keys(value_node, (*where, key) if key is not None else where,
                                 seen_nodes)


def parse_yaml(text: str, name: str) -> Any:
    """``text`` as strict YAML (:class:`StrictLoader`); a syntax error or a duplicate key is a
    ConfigFileError that starts with ``NAME:LINE[:COL]``."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: no arbitrary objects
    except DuplicateKeyError as err:
        raise ConfigFileError(f"{name}:{err.line}: duplicate key {err.key} (first on line "
                              f"{err.first}); YAML would keep only the last one: remove one",
                              line=err.line) from None
    except yaml.MarkedYAMLError as err:
        mark, start = err.problem_mark or err.context_mark, err.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = err.problem or err.context or "invalid YAML"
        if err.context and start is not None and start is not mark:
            problem += f" ({err.context} at {start.line + 1}:{start.column + 1})"
        raise ConfigFileError(f"{where}: YAML syntax error: {' '.join(problem.split())}",
                              line=mark.line + 1 if mark else 0) from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{name}: YAML syntax error: {' '.join(str(err).split())}",
                              line=0) from None


def read_yaml(path: str | Path) -> Any:
    """The strict YAML in ``path``; an unreadable file is one line too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigFileError(f"{path}: is a folder, not a config file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigFileError(f"{path}: cannot read: {reason}") from None
    return parse_yaml(text, str(path))


def default_benchmark(path: str | Path) -> str:
    """The benchmark of a config file without ``benchmark:``: the file's name without its
    suffix, when that is a valid benchmark name."""
    stem = Path(path).stem
    if not BENCHMARK_NAME.match(stem) or len(stem) > BENCHMARK_MAX:
        raise ConfigFileError(
            f"{path}: no benchmark: given, and the file name {stem!r} cannot name it (one folder "
            "name of letters, digits, '_', '.' and '-' that starts with a letter or digit); "
            "add benchmark: <name> or rename the file")
    return stem


@dataclass(frozen=True)
class ConfigFile:
    """A config as read from ``path``: ``data`` with ``benchmark`` filled in, and the folder
    its relative paths are read from."""

    path: Path
    data: dict[str, Any]
    #: the file's folder, absolute
    base_dir: Path
    #: whether ``benchmark`` came from the file's name
    named_by_file: bool


def _mapping(data: Any, path: Path) -> dict[str, Any]:
    if data is None:
        raise ConfigFileError(f"{path}: the config file is empty; a config needs at least "
                              "algorithms: and tasks: (see config/config.yaml)")
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: a config is a mapping of keys (algorithms:, tasks:, ...), "
                              f"not a {type(data).__name__}")
    return data


def load_config_file(path: str | Path) -> ConfigFile:
    """Read a config file (strict YAML, not empty, a mapping) and name its benchmark."""
    path = Path(path)
    data = _mapping(read_yaml(path), path)
    named_by_file = "benchmark" not in data
    if named_by_file:
        data["benchmark"] = default_benchmark(path)
    return ConfigFile(path, data, path.expanduser().resolve().parent, named_by_file)


def check_config_file(path: str | Path, weights: str = "warn"
                      ) -> tuple[dict[str, Any], ConfigFile]:
    """:func:`load_config_file`, then ``semibench.config.check_config`` with its relative paths
    read from the file's folder (``weights``: what missing pretrained weights do): the checked
    config, and the file as read."""
    from semibench.config import check_config

    loaded = load_config_file(path)
    return check_config(loaded.data, base_dir=loaded.base_dir, weights=weights), loaded


def for_workflow(config: dict[str, Any], configfiles: Sequence[str | Path]) -> Path:
    """The Snakefile's side of the same rules. Snakemake has already read and merged the config
    files (``--configfile``, else ``config/config.yaml``), keeping the last of two equal keys;
    read them again strictly to refuse those, name the benchmark after the last file when
    ``config`` has no ``benchmark`` (``--config benchmark=...`` may give one), and return the
    folder of the last file, which relative paths are read from (the working directory when
    there is no file)."""
    for file in configfiles:
        _mapping(read_yaml(file), Path(file))
    if not configfiles:
        return Path.cwd()
    last = Path(configfiles[-1])
    if "benchmark" not in config:
        config["benchmark"] = default_benchmark(last)
    return last.expanduser().resolve().parent
