"""Plugins: algorithms (and tasks, backbones) from outside the package, by config key or entry
point, in the same registries, with one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semibench.algorithms import ALGORITHMS
from semibench.config import ConfigError, check_config, run_config
from tests.helpers.runs import train

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "my_algorithm" / "confmatch.py"
TRAIN = train(iterations=4, eval_every=2)


def _config(plugins: list[str], algorithms: list[str]) -> dict:
    return {"plugins": plugins, "algorithms": algorithms, "seeds": [0],
            "tasks": {"mnist": {"num_labels": [40], "train": TRAIN}}}


def _cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from semibench.cli import main; raise SystemExit(main())", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_config_plugin_file_registers_an_algorithm_whose_edits_rerun_its_jobs(tmp_path) -> None:
    cfg = check_config(_config([str(EXAMPLE.relative_to(REPO))], ["confmatch", "fixmatch"]))
    assert "confmatch" in ALGORITHMS
    assert ALGORITHMS.origin("confmatch") == "plugin examples/my_algorithm/confmatch.py"
    run = run_config(cfg, "mnist", 40, "confmatch", 0)
    assert run["algorithm_params"] == {"p_min": 0.5, "gamma": 2.0, "lambda_u": 1.0}
    (digest,) = run["plugins"].values()
    import hashlib
    assert digest == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    # a run that uses no plugin does not carry the key (its settings, so its jobs, unchanged)
    plain = run_config(check_config(_config([], ["fixmatch"])), "mnist", 40, "fixmatch", 0)
    assert "plugins" not in plain
    assert run_config(cfg, "mnist", 40, "fixmatch", 0) == plain


def test_plugin_algorithm_trains(prepared_mnist, tmp_path) -> None:
    from semibench.splits import make_split, write_split
    from semibench.tasks import load_prepared
    from semibench.train.loop import train_run

    cfg = check_config(_config([str(EXAMPLE)], ["confmatch"]))
    data = load_prepared(prepared_mnist)
    split = tmp_path / "split.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), split)
    metrics = train_run(run_config(cfg, "mnist", 40, "confmatch", 0), prepared_mnist, split,
                        tmp_path / "run")
    assert metrics["algorithm"] == "confmatch" and metrics["last"]["iteration"] == 4
    curve = (tmp_path / "run" / "curve.csv").read_text()
    assert "unsup_loss" in curve.splitlines()[0]


def test_bad_plugin_path_is_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^plugins\[0\]: plugin file nope/mine\.py does not "
                                          r"exist"):
        check_config(_config(["nope/mine.py"], ["fixmatch"]))
    with pytest.raises(ConfigError, match=r"plugins\[0\]: plugin no_such_module_xyz failed to "
                                          "load: ModuleNotFoundError"):
        check_config(_config(["no_such_module_xyz"], ["fixmatch"]))


def test_plugin_that_reuses_a_name_is_one_line(tmp_path) -> None:
    clash = tmp_path / "clash.py"
    clash.write_text("from semibench.algorithms import ALGORITHMS\n"
                     "from semibench.algorithms.fixmatch import FixMatch\n"
                     "ALGORITHMS.register('fixmatch')(FixMatch)\n")
    with pytest.raises(ConfigError) as err:
        check_config(_config([str(clash)], ["fixmatch"]))
    message = str(err.value)
    assert "\n" not in message
    assert "duplicate algorithm name 'fixmatch': already registered by " \
           "semibench.algorithms.fixmatch" in message
    assert ALGORITHMS.origin("fixmatch") == "semibench.algorithms.fixmatch"


def test_module_plugin_and_entry_point_plugin_show_in_list(tmp_path) -> None:
    lab = tmp_path / "my_lab"
    lab.mkdir()
    (lab / "__init__.py").write_text("")
    (lab / "algo.py").write_text(EXAMPLE.read_text().replace('"confmatch"', '"labmatch"'))
    (lab / "algo_ep.py").write_text(EXAMPLE.read_text().replace('"confmatch"', '"epmatch"'))
    dist = tmp_path / "my_lab-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lab\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[semibench.plugins]\nepmatch = my_lab.algo_ep\n")
    env = {"PYTHONPATH": str(tmp_path)}
    out = _cli("list", "--plugin", "my_lab.algo", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split() == ["labmatch", "plugin", "my_lab.algo"] for line in lines)
    assert any(line.split()[:3] == ["epmatch", "entry", "point"] for line in lines)
    bad = _cli("list", "--plugin", str(tmp_path / "missing.py"), env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "does not exist" in bad.stderr


def test_example_config_is_valid() -> None:
    out = _cli("check-config", "examples/my_algorithm/config.yaml")
    assert out.returncode == 0, out.stderr
    from semibench.config_file import check_config_file

    cfg = json.loads(json.dumps(check_config_file(REPO / "examples/my_algorithm/config.yaml")[0]))
    assert "confmatch" in cfg["algorithms"]
