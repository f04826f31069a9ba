"""The USB configs reproduce USB's arithmetic: every USB run config has ``amp: False``, so
each resolved run trains in float32 on a GPU too; bf16 is a speed option one setting away."""

import pytest
import torch
import yaml

from semibench.config import check_config, run_config, run_grid
from semibench.train.loop import precision_dtype


@pytest.mark.parametrize("name", ["usb", "classic_cv"])
def test_usb_configs_train_in_float32_on_cuda(repo_root, name):
    raw = yaml.safe_load((repo_root / "config" / f"{name}.yaml").read_text())
    cfg = check_config(raw)
    grid = run_grid(cfg)
    for task, n, alg, seed in grid[:: max(1, len(grid) // 60)]:
        amp = run_config(cfg, task, n, alg, seed)["train"]["amp"]
        assert amp == "none", (task, alg)
        assert precision_dtype(amp, torch.device("cuda")) is None  # no autocast at all
    # the speed option is one key away and reaches every run
    raw["train"]["amp"] = "bf16"
    task, n, alg, seed = grid[0]
    assert run_config(check_config(raw), task, n, alg, seed)["train"]["amp"] == "bf16"
