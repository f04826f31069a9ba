"""The workflow's cached plan: equal to the full checks, free of torch when cached, never stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from semibench.workflow_plan import ConfigInvalid, compute, source_digest, workflow_plan

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_cached_plan_equals_the_full_checks_and_reads_without_torch(tmp_path) -> None:
    config = _default_config()
    first = workflow_plan(config, SCHEMA, tmp_path)
    assert first == json.loads(json.dumps(compute(config, SCHEMA)))
    assert len(first["runs"]) == len(first["grid"]) > 0
    (cached,) = tmp_path.glob("plan-*.json")
    script = ("import sys, yaml; from semibench.workflow_plan import workflow_plan; "
              f"p = workflow_plan(yaml.safe_load(open({str(REPO / 'config/config.yaml')!r})), "
              f"{str(SCHEMA)!r}, {str(tmp_path)!r}); "
              "print(len(p['runs']), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == [str(len(first["runs"])), "False"]
    assert list(tmp_path.glob("plan-*.json")) == [cached]


def test_a_changed_config_gets_a_new_plan_and_the_old_one_goes(tmp_path) -> None:
    config = _default_config()
    workflow_plan(config, SCHEMA, tmp_path)
    config["tasks"]["mnist"]["train"]["lr"] = 0.01
    plan = workflow_plan(config, SCHEMA, tmp_path)
    run = next(v for k, v in plan["runs"].items() if k.startswith("mnist/"))
    assert run["train"]["lr"] == 0.01
    assert len(list(tmp_path.glob("plan-*.json"))) == 1


def test_a_corrupt_cache_is_recomputed(tmp_path) -> None:
    config = _default_config()
    good = workflow_plan(config, SCHEMA, tmp_path)
    (cached,) = tmp_path.glob("plan-*.json")
    cached.write_text("{not json")
    assert workflow_plan(config, SCHEMA, tmp_path) == good


def test_invalid_config_is_one_line_and_not_cached(tmp_path) -> None:
    config = _default_config()
    config["tasks"]["mnist"]["num_labels"] = [41]
    with pytest.raises(ConfigInvalid, match=r"tasks\.mnist\.num_labels\[0\]=41"):
        workflow_plan(config, SCHEMA, tmp_path)
    assert not list(tmp_path.glob("plan-*.json"))


def test_plugin_configs_are_checked_afresh(tmp_path) -> None:
    config = _default_config()
    config["plugins"] = [str(REPO / "examples/my_algorithm/confmatch.py")]
    config["algorithms"] = ["confmatch"]
    plan = workflow_plan(config, SCHEMA, tmp_path)
    assert any("/confmatch/" in k for k in plan["runs"])
    assert not list(tmp_path.glob("plan-*.json"))


def test_source_digest_follows_the_package_files(tmp_path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = source_digest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    changed = source_digest(tmp_path)
    assert changed != before
    (tmp_path / "notes.txt").write_text("ignored")
    assert source_digest(tmp_path) == changed  # a file that is not source leaves it as it was


def test_missing_weights_warn_on_every_call_and_never_stay_in_the_cache(tmp_path, monkeypatch,
                                                                        capsys) -> None:
    """A dry run cannot be told from a real one here: one warning line per missing set, looked
    for again on every call (the cached plan keeps the list, not the answer)."""
    monkeypatch.setenv("SEMIBENCH_WEIGHTS", str(tmp_path / "weights"))
    config = _default_config()
    config["tasks"]["stl10"] = {"num_labels": [40]}  # ViT-B/16 with USB's MAE weights
    first = workflow_plan(config, SCHEMA, tmp_path / "cache")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "SemiBench warning: missing pretrained weights: vit_base_patch16_96 (tasks stl10): "
        f"mae_pretrain_vit_base.pth not in {tmp_path / 'weights'}")
    assert workflow_plan(config, SCHEMA, tmp_path / "cache") == first  # cached: warns again
    assert capsys.readouterr().err.count("missing pretrained weights") == 1
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mae_pretrain_vit_base.pth").write_bytes(b"")
    assert workflow_plan(config, SCHEMA, tmp_path / "cache") == first
    assert capsys.readouterr().err == ""
