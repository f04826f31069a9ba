"""Every failure a user can cause or meet is a SemiBenchError, printed by ``semibench`` as one
line with exit status 1 (issue #18, part 4)."""

from __future__ import annotations

import errno
import importlib
import pkgutil

import pytest

import semibench
from semibench import cli
from semibench.cli import data as data_commands
from semibench.errors import SemiBenchError


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _error_classes() -> list[type]:
    """Every SemiBenchError subclass in the package: each module is imported, so a new error
    class anywhere is covered without editing this test."""
    for module in pkgutil.walk_packages(semibench.__path__, "semibench."):
        if not module.name.endswith(".__main__"):  # running one is running the command
            importlib.import_module(module.name)
    return sorted((c for c in _all_subclasses(SemiBenchError) if c.__module__.startswith("semibench.")),
                  key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERRORS = _error_classes()


def test_the_known_error_classes_are_found():
    names = {c.__name__ for c in ERRORS}
    assert {"ConfigError", "PlanError", "FetchError", "CorruptArchiveError", "SplitError",
            "NoFreeSlotError", "ModelsUnavailableError", "UnknownNameError",
            "ManualDownloadRequired", "ChecksumError"} <= names


@pytest.mark.parametrize("error", ERRORS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_each_error_is_one_line_and_status_1(error, monkeypatch, capsys):
    def fail(_args):
        raise error("the mirror is down; try again later")

    monkeypatch.setattr(data_commands, "fetch", fail)
    assert cli.main(["fetch", "--task", "mnist", "--raw-dir", "raw"]) == 1
    err = capsys.readouterr().err
    assert err == "semibench fetch: error: the mirror is down; try again later\n"


def test_a_full_disk_is_one_line(monkeypatch, capsys):
    def fail(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "data/raw/mnist/x.gz")

    monkeypatch.setattr(data_commands, "fetch", fail)
    assert cli.main(["fetch", "--task", "mnist", "--raw-dir", "raw"]) == 1
    assert capsys.readouterr().err == ("semibench fetch: error: No space left on device "
                                       "(data/raw/mnist/x.gz)\n")


def test_a_bug_keeps_its_traceback(monkeypatch):
    def fail(_args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(data_commands, "fetch", fail)
    with pytest.raises(ZeroDivisionError):
        cli.main(["fetch", "--task", "mnist", "--raw-dir", "raw"])
