"""One registry class for every kind of named component (tasks, backbones, algorithms).

The defining module fills the registry with a decorator; the package ``__init__`` discovers
the defining modules with ``pkgutil`` so there is no second, hand-kept list of names. Plugins
(``semibench.plugins``) register into the same registries; each entry remembers where it came
from, which ``semibench list`` shows. A *family* answers every name under a prefix, e.g.
``timm/<any timm model>``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from semibench.errors import SemiBenchError

T = TypeVar("T")


class UnknownNameError(SemiBenchError, KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


#: where entries registered now come from (set by the plugin loader), else their module
_ORIGIN: list[str] = []


@contextlib.contextmanager
def registering_from(origin: str) -> Iterator[None]:
    """Entries registered inside this block record ``origin`` (e.g. ``plugin my_lab.algo``)."""
    _ORIGIN.append(origin)
    try:
        yield
    finally:
        _ORIGIN.pop()


class Registry(Generic[T]):
    """A name -> object mapping that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._families: dict[str, Callable[..., Any]] = {}

    def _claim(self, name: str, obj: Any) -> None:
        if name in self._entries or name in self._families:
            raise ValueError(f"duplicate {self.kind} name {name!r}: already registered by "
                             f"{self._origins[name]}")
        self._origins[name] = _ORIGIN[-1] if _ORIGIN else getattr(obj, "__module__", "?")

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if "/" in name:
                raise ValueError(f"{self.kind} name {name!r}: '/' is reserved for families")
            self._claim(name, obj)
            self._entries[name] = obj
            return obj

        return decorator

    def register_family(self, prefix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``factory(rest, ...)`` answers every name ``<prefix>/<rest>``."""
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._claim(prefix, factory)
            self._families[prefix] = factory
            return factory

        return decorator

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        prefix, sep, rest = name.partition("/")
        if sep and rest and prefix in self._families:
            return functools.partial(self._families[prefix], rest)  # type: ignore[return-value]
        allowed = [*sorted(self._entries), *(f"{p}/<name>" for p in sorted(self._families))]
        raise UnknownNameError(f"unknown {self.kind} {name!r}; allowed: {', '.join(allowed)}")

    def unregister(self, name: str) -> None:
        """Remove an entry or family (tests restore the registries after loading plugins)."""
        self._entries.pop(name, None)
        self._families.pop(name, None)
        self._origins.pop(name, None)

    def origin(self, name: str) -> str:
        """Where ``name`` (or its family) was registered: a module or a plugin."""
        return self._origins.get(name) or self._origins[name.partition("/")[0]]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def families(self) -> list[str]:
        return sorted(self._families)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        prefix, sep, rest = name.partition("/")
        return name in self._entries or bool(sep and rest and prefix in self._families)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_submodules(package_name: str) -> None:
    """Import every module of a package so that their ``@register`` decorators run."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
