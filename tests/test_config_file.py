"""A config read from its file (``semibench.config_file``), the same way by every command:
strict YAML (a key given twice, an empty file: one line), the benchmark named after the file,
relative paths read from the file's folder whatever the working directory; and every whole
config that the README and the own-data page show is valid on data laid out as they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from semibench import cli
from semibench.config import ConfigError, check_config, load_schema, run_config, run_grid
from semibench.config_file import (
    BENCHMARK_MAX,
    BENCHMARK_NAME,
    ConfigFileError,
    check_config_file,
    for_workflow,
    load_config_file,
    read_yaml,
)
from tests.helpers.own_data import write_declared
from tests.helpers.workflow import snakemake

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples/my_algorithm/confmatch.py"
#: the pages whose whole configs must be valid
DOCUMENTED = [REPO / "README.md", REPO / "docs/how-to/own-data.md"]
YAML_BLOCK = re.compile(r"^```yaml[^\n]*\n(.*?)^```", re.S | re.M)
MNIST = "algorithms: [supervised]\ntasks:\n  mnist:\n    num_labels: [40]\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- strict YAML


DUPLICATES = [
    ("algorithms: [supervised]\ntasks: {mnist: {}}\nalgorithms: [fixmatch]\n",
     "c.yaml:3: duplicate key algorithms (first on line 1)"),
    ("algorithms: all\ntasks:\n  mnist:\n    num_labels: [40]\n    train: {iterations: 5}\n"
     "    num_labels: [80]\n",
     "c.yaml:6: duplicate key tasks.mnist.num_labels (first on line 4)"),
    ("algorithms: all\ntasks: {mnist: {train: {lr: 0.1, lr: 0.2}}}\n",
     "c.yaml:2: duplicate key tasks.mnist.train.lr (first on line 2)"),
    ("seeds: [0]\nplugins:\n  - {a: 1, a: 2}\n",
     "c.yaml:3: duplicate key plugins[0].a (first on line 3)"),
]


@pytest.mark.parametrize("text, message", DUPLICATES)
def test_a_key_given_twice_is_one_line_naming_it_and_both_lines(tmp_path, text, message):
    with pytest.raises(ConfigFileError) as err:
        read_yaml(_write(tmp_path / "c.yaml", text))
    assert str(err.value) == (f"{tmp_path / message}; YAML would keep only the last one: "
                              "remove one")
    assert err.value.line == int(message.split(":")[1])


def test_what_strict_yaml_still_reads(tmp_path):
    """The same key in two mappings, a merge key overridden, an alias: plain YAML."""
    text = ("base: &b {lr: 0.1, momentum: 0.9}\ntasks:\n  a: {train: {<<: *b, lr: 0.2}}\n"
            "  b: {train: *b}\n")
    data = read_yaml(_write(tmp_path / "c.yaml", text))
    assert data["tasks"] == {"a": {"train": {"lr": 0.2, "momentum": 0.9}},
                             "b": {"train": {"lr": 0.1, "momentum": 0.9}}}


@pytest.mark.parametrize("text, message", [
    ("", "the config file is empty; a config needs at least algorithms: and tasks:"),
    ("# nothing yet\n", "the config file is empty"),
    ("- algorithms\n", "a config is a mapping of keys (algorithms:, tasks:, ...), not a list"),
])
def test_an_empty_file_is_one_line(tmp_path, text, message):
    path = _write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigFileError) as err:
        load_config_file(path)
    assert str(err.value).startswith(f"{path}: {message}") and err.value.line is None


# --------------------------------------------------------------------------- benchmark name


def test_the_benchmark_is_named_after_the_file_unless_the_config_names_it(tmp_path):
    loaded = load_config_file(_write(tmp_path / "my_data.yaml", MNIST))
    assert loaded.data["benchmark"] == "my_data" and loaded.named_by_file
    assert loaded.base_dir == tmp_path.resolve()
    named = load_config_file(_write(tmp_path / "other.yml", "benchmark: mine\n" + MNIST))
    assert named.data["benchmark"] == "mine" and not named.named_by_file
    with pytest.raises(ConfigFileError, match=r"my data.yaml: no benchmark: given, and the file "
                       r"name 'my data' cannot name it .*; add benchmark: <name>"):
        load_config_file(_write(tmp_path / "my data.yaml", MNIST))
    assert check_config(yaml.safe_load(MNIST))["benchmark"] == "offline"  # no file: the default


def test_the_default_benchmark_names_itself_and_the_name_rule_is_the_schemas(repo_root):
    default = repo_root / "config/config.yaml"
    assert yaml.safe_load(default.read_text())["benchmark"] == "offline"
    assert not load_config_file(default).named_by_file
    schema = load_schema()["properties"]["benchmark"]
    assert BENCHMARK_NAME.pattern == schema["pattern"]
    assert schema["maxLength"] == BENCHMARK_MAX and schema["default"] == "offline"


def test_the_default_benchmarks_run_settings_do_not_change(repo_root):
    """Read as a file (relative paths from config/), its runs are the ones it always had."""
    default = repo_root / "config/config.yaml"
    as_dict = check_config(yaml.safe_load(default.read_text()))
    as_file, loaded = check_config_file(default)
    assert loaded.base_dir == repo_root / "config" and as_file == as_dict
    assert [run_config(as_file, *run) for run in run_grid(as_file)] == [
        run_config(as_dict, *run) for run in run_grid(as_dict)]


def test_the_workflow_reads_its_files_the_same_way(tmp_path):
    first = _write(tmp_path / "a/base.yaml", MNIST)
    last = _write(tmp_path / "b/extra.yaml", "seeds: [0]\n")
    config = yaml.safe_load(MNIST)
    assert for_workflow(config, [first, last]) == (tmp_path / "b").resolve()
    assert config["benchmark"] == "extra"  # the last file's, as Snakemake merges them
    given = {"benchmark": "mine"}  # e.g. --config benchmark=mine
    for_workflow(given, [first])
    assert given["benchmark"] == "mine"
    dup = _write(tmp_path / "dup.yaml", MNIST + "algorithms: all\n")
    with pytest.raises(ConfigFileError, match=r"dup.yaml:5: duplicate key algorithms"):
        for_workflow({}, [first, dup])


# --------------------------------------------------------------------------- relative paths


def _project(root: Path, name: str = "mine.yaml") -> Path:
    """A config next to its images and its plugin, as a user lays them out."""
    spec = {"domain": "image", "train": "pics/train", "test": "pics/test", "val_per_class": 1}
    write_declared(root, spec, per_class=4)
    _write(root / "lab/confmatch.py", PLUGIN.read_text())
    config = {"plugins": ["lab/confmatch.py"], "seeds": [0],
              "algorithms": ["supervised", "confmatch"],
              "tasks": {"pics": {"from_files": spec, "num_labels": [2],
                                 "train": {"iterations": 2, "eval_every": 1}}}}
    return _write(root / name, yaml.safe_dump(config))


def test_check_config_reads_relative_paths_from_the_files_folder(tmp_path, monkeypatch, capsys):
    path = _project(tmp_path / "project")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["check-config", str(Path("../project/mine.yaml"))]) == 0
    assert capsys.readouterr().out == (
        "../project/mine.yaml: valid; 2 training runs; benchmark mine (from the file's name): "
        "reports/mine/index.html\n")
    config, _ = check_config_file(path)
    assert config["plugins"] == [str((tmp_path / "project/lab/confmatch.py").resolve())]
    assert config["tasks"]["pics"]["from_files"]["train"] == "pics/train"  # as written
    with pytest.raises(ConfigError, match=r"plugins\[0\]: plugin file lab/confmatch.py does "
                       r"not exist"):  # the same config as a dict: read from elsewhere/
        check_config(yaml.safe_load(path.read_text()))
    with pytest.raises(SystemExit) as err:
        cli.main(["check-config", str(_write(tmp_path / "empty.yaml", ""))])
    assert str(err.value) == (f"semibench check-config: error: {tmp_path}/empty.yaml: the config "
                              "file is empty; a config needs at least algorithms: and tasks: "
                              "(see config/config.yaml)")


def test_plan_reads_the_file_the_same_way(tmp_path, monkeypatch):
    import semibench.plan as plan
    from semibench.plan import PlanError

    def stop(config, *args, **kwargs):
        raise PlanError(f"planned {config['benchmark']} with {config['plugins'][0]}")

    monkeypatch.setattr(plan, "make_plan", stop)
    path = _project(tmp_path / "project", "planned.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        cli.main(["plan", "--configfile", str(path), "--device", "cpu"])
    assert str(err.value).endswith(
        f"planned planned with {(tmp_path / 'project/lab/confmatch.py').resolve()}")


def test_snakemake_reads_paths_from_the_config_files_folder(tmp_path):
    """From another working directory (``--directory``), as check-config does; the report is
    named after the file; a key given twice stops it before any job."""
    path = _project(tmp_path / "project", "my_pics.yaml")
    (tmp_path / "work").mkdir()
    run = snakemake(tmp_path / "work", "-n", "--configfile", str(path))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "rule fetch_files:" in out and "reports/my_pics/index.html" in out
    assert "confmatch/seed0/metrics.json" in out
    dup = _write(tmp_path / "project/dup.yaml", path.read_text() + "seeds: [1]\n")
    run = snakemake(tmp_path / "work", "-n", "--configfile", str(dup))
    assert run.returncode != 0
    assert f"SemiBench config error: {dup}:" in run.stderr
    assert "duplicate key seeds (first on line" in run.stderr


# --------------------------------------------------------------------------- documented configs


def _whole_configs() -> list:
    """Every ```yaml block of the pages with a top-level ``tasks:``: a whole config (a block
    without one is an excerpt, e.g. of ``plugins:``, and is checked by tests/test_docs.py)."""
    found = []
    for page in DOCUMENTED:
        for i, m in enumerate(YAML_BLOCK.finditer(page.read_text(encoding="utf-8")), 1):
            data = yaml.safe_load(m.group(1))
            if isinstance(data, dict) and "tasks" in data:
                found.append(pytest.param(m.group(1), id=f"{page.name}-{i}"))
    return found


def test_the_pages_show_whole_configs():
    ids = [p.id for p in _whole_configs()]
    assert any(i.startswith("README.md") for i in ids), ids
    assert sum(i.startswith("own-data.md") for i in ids) >= 2, ids


@pytest.mark.parametrize("text", _whole_configs())
def test_documented_configs_are_valid(tmp_path, monkeypatch, text):
    """Written as my_project/my_data.yaml next to data laid out as it declares, and checked from
    another folder."""
    project = tmp_path / "my_project"
    data = yaml.safe_load(text)
    for settings in data["tasks"].values():
        if "from_files" in settings:
            write_declared(project, settings["from_files"])
    for spec in data.get("plugins", []):
        if spec.endswith(".py"):
            _write(project / spec, PLUGIN.read_text())
    path = _write(project / "my_data.yaml", text)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config, _ = check_config_file(path)
    assert run_grid(config) and config["benchmark"] == data.get("benchmark", "my_data")
