"""The ``semibench`` command itself: its version, its help (the user's commands before the
pipeline steps) and ``semibench list``'s columns."""

from __future__ import annotations

import re
import tomllib

import pytest

from semibench.cli import USER_COMMANDS, main


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_version_is_the_packages(repo_root, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out == f"semibench {project['version']}\n"


def test_help_lists_the_users_commands_before_the_pipeline_steps(capsys):
    text = _help(capsys)
    users, steps = text.split("\ncommands:\n", 1)[1].split(
        "\npipeline steps (called by the Snakemake rules):\n", 1)
    listed = re.findall(r"^  ([a-z][a-z-]*)  ", users, re.M)
    assert listed == [c for c in USER_COMMANDS if c in listed]
    assert {"check-config", "plan", "list", "predict", "evaluate"} <= set(listed)
    assert set(re.findall(r"^  ([a-z][a-z-]*)  ", steps, re.M)) >= {
        "fetch", "prepare", "split", "backtranslate", "train", "aggregate", "figures",
        "report"}
    assert "``" not in text and "::" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_every_command_has_its_own_help(capsys):
    from semibench.docs import cli_commands

    names = list(cli_commands())
    assert len(names) >= 13
    for name in names:
        assert _help(capsys, name).startswith(f"usage: semibench {name} ")


def test_list_columns_fit_a_long_plugin_name(capsys):
    from semibench.algorithms import ALGORITHMS
    from semibench.algorithms.fixmatch import FixMatch
    from semibench.registry import registering_from

    long_name = "my_lab_consistency_with_adaptive_thresholds_match"
    with registering_from("plugin my_lab.algorithms"):
        ALGORITHMS.register(long_name)(FixMatch)  # tests/conftest.py unregisters it
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out.split("algorithms:\n", 1)[1].split("\nimbalance", 1)[0].splitlines()
    assert f"  {long_name}  plugin my_lab.algorithms" in section
    starts = {line.index(" semibench.") + 1 if " semibench." in line
              else line.index(" plugin ") + 1 for line in section}
    assert starts == {len(long_name) + 4}  # one column for every row
    tasks = out.split("tasks:\n", 1)[1].split("\nalgorithms:", 1)[0].splitlines()
    assert len({line.index(" classes") for line in tasks}) == 1
    assert len({line.index("backbone ") for line in tasks}) == 1


def test_data_steps_do_not_import_torch(tmp_path):
    """fetch, prepare and split run once per task and seed in every pipeline: each start that
    imports torch (about 3 s of CPU) for nothing adds up over a sweep."""
    import subprocess
    import sys

    code = ("import sys; from semibench.cli import main\n"
            f"for argv in (['fetch', '--task', 'mnist', '--raw-dir', r'{tmp_path}/raw'],\n"
            f"             ['prepare', '--task', 'mnist', '--raw-dir', r'{tmp_path}/raw',\n"
            f"              '--out-dir', r'{tmp_path}/prep'],\n"
            f"             ['split', '--task', 'mnist', '--prepared', r'{tmp_path}/prep',\n"
            f"              '--num-labels', '40', '--seed', '0', '--out', r'{tmp_path}/s.json']):\n"
            "    assert main(argv) == 0, argv\n"
            "heavy = sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
