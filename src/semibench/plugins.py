"""Algorithms, tasks and backbones from outside the package, in the same registries.

A plugin is a Python module that registers entries with the usual decorators
(``@ALGORITHMS.register("mymatch")``, ``@TASKS.register(...)``, ``@BACKBONES.register(...)``).
Two ways to bring one in, without editing SemiBench:

* the config key ``plugins:``, a list of importable module names (``my_lab.mymatch``) or
  ``.py`` files (relative to the config file's folder, ``semibench.config_file``; to the
  working directory for a config built in Python);
* the entry-point group ``semibench.plugins`` of an installed distribution, e.g. in its
  ``pyproject.toml``: ``[project.entry-points."semibench.plugins"] mymatch = "my_lab.mymatch"``.

Every process that resolves names loads them: the workflow (config checks), each training job
(its resolved settings carry the list and the SHA-256 of each file, so an edited plugin reruns
its jobs) and ``semibench list``, which shows where each entry comes from.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from semibench.errors import SemiBenchError
from semibench.registry import registering_from

ENTRY_POINT_GROUP = "semibench.plugins"

#: spec -> module, so that loading twice in one process registers once
_LOADED: dict[str, Any] = {}
#: registry origin ("plugin my_lab.algo") -> the loaded key (module name or absolute path)
_ORIGINS: dict[str, str] = {}


class PluginError(SemiBenchError, ValueError):
    """A plugin that cannot be loaded; one line naming the plugin and the cause."""


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def resolve(spec: str, where: str = "plugins", base: str | Path | None = None) -> str:
    """A file plugin as an absolute path (checked to exist; a relative one is read from
    ``base``, else the working directory); a module name unchanged."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"{where}: {spec!r} is not a module name or a .py file")
    if not _is_path(spec):
        return spec
    path = (Path(base or ".") / Path(spec).expanduser()).resolve()
    if not path.is_file():
        raise PluginError(f"{where}: plugin file {spec} does not exist (looked at {path})")
    if path.suffix != ".py":
        raise PluginError(f"{where}: plugin file {spec} is not a .py file")
    return str(path)


def _import_file(path: str) -> Any:
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    name = f"semibench_plugin_{Path(path).stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle-free checkpoints look modules up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load(spec: str, where: str = "plugins", origin: str | None = None,
         base: str | Path | None = None) -> Any:
    """Import one plugin (a module name or a .py file) once per process."""
    key = resolve(spec, where, base)
    if key in _LOADED:
        return _LOADED[key]
    origin = origin or f"plugin {spec}"
    try:
        with registering_from(origin):
            module = _import_file(key) if _is_path(key) else importlib.import_module(key)
    except PluginError:
        raise
    except Exception as err:  # one line, whatever the plugin did wrong
        detail = str(err).splitlines()[0] if str(err) else ""
        raise PluginError(f"{where}: plugin {spec} failed to load: {type(err).__name__}: "
                          f"{detail}") from err
    _LOADED[key] = module
    _ORIGINS[origin] = key
    return module


def load_entry_points() -> None:
    """Plugins that installed distributions declare in the ``semibench.plugins`` group."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        load(ep.value.partition(":")[0], where=f"entry point {ep.name}",
             origin=f"entry point {ep.name} ({ep.value})")


def load_plugins(specs: list[str] | None = None, base: str | Path | None = None) -> list[str]:
    """Entry-point plugins, then ``specs`` (the config's ``plugins:``; relative files are read
    from ``base``, the config file's folder); returns the resolved specs (absolute paths for
    files, which each training job imports), in order."""
    load_entry_points()
    resolved = []
    for i, spec in enumerate(specs or []):
        load(spec, where=f"plugins[{i}]", base=base)
        resolved.append(resolve(spec, f"plugins[{i}]", base))
    return resolved


def used_by(origins: list[str]) -> list[str]:
    """The loaded plugins (keys) that registered entries with these registry origins."""
    return sorted({_ORIGINS[o] for o in origins if o in _ORIGINS})


def fingerprint(specs: list[str]) -> dict[str, str]:
    """SHA-256 of each plugin's source file: part of the settings of the runs that use it, so
    an edit reruns them (and only them)."""
    out = {}
    for spec in specs:
        module = _LOADED[spec] if spec in _LOADED else load(spec)
        file = getattr(module, "__file__", None)
        out[spec] = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else ""
    return out
