"""benchmarks/speed.py and benchmarks/device_speed.sh in their CPU dry modes (toy sizes)."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pytest

from semibench import plan


@pytest.fixture(scope="module")
def speed(repo_root):
    spec = importlib.util.spec_from_file_location("speed", repo_root / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("speed", None)


def test_tiny_cpu_run_writes_tables_and_a_calibration(speed, tmp_path):
    cal = tmp_path / "calibration.csv"
    argv = ["--tiny", "--settings", "vit_s2_32", "--device", "cpu", "--threads", "1",
            "--rounds", "2", "--steps", "1", "--warmup", "1", "--split-every", "1",
            "--no-semilearn", "--out", str(tmp_path), "--tag", "t", "--write-calibration",
            str(cal)]
    assert speed.main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "speed-t.csv").open()))
    assert [(r["setting"], r["side"], r["mode"]) for r in rows] == [
        ("vit_s2_32", "SemiBench", "none/none")]
    row = rows[0]
    assert int(row["steps_timed"]) == 2 and float(row["ms_per_it"]) > 0
    phases = [float(row[f"{p}_ms"]) for p in ("data", "forward", "backward", "optimizer")]
    assert all(v > 0 for v in phases) and 0 < float(row["data_share"]) < 1
    assert "| vit_s2_32 (2+2) | none/none | SemiBench |" in (tmp_path / "speed-t.md").read_text()
    calibration = plan.read_calibration(cal)
    assert [(r["device"], r["family"], r["amp"], r["compile"]) for r in calibration] == [
        ("cpu", "vit", "none", "none")]
    assert float(calibration[0]["train_tflops"]) > 0


def test_bad_settings_and_modes_are_one_line(speed, capsys):
    assert speed.main(["--settings", "vit_xl", "--device", "cpu"]) == 2
    assert speed.main(["--settings", "vit_s2_32", "--device", "cpu", "--modes", "bf16/none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("speed.py: error: unknown setting(s) vit_xl")
    assert "not valid on cpu" in err[1]


def test_semilearn_side_runs_when_installed(speed, tmp_path):
    """semilearn 0.3.2 beside ours (`make bench-deps`); skipped where it is not installed."""
    try:
        speed.import_semilearn()
    except ImportError as err:
        pytest.skip(str(err))
    argv = ["--tiny", "--settings", "vit_s2_32", "--device", "cpu", "--threads", "1",
            "--rounds", "2", "--steps", "1", "--warmup", "1", "--out", str(tmp_path),
            "--tag", "sl"]
    assert speed.main(argv) == 0
    rows = {r["side"]: r for r in csv.DictReader((tmp_path / "speed-sl.csv").open())}
    assert set(rows) == {"SemiBench", "semilearn"}
    assert float(rows["SemiBench"]["ratio_median"]) > 0


@pytest.mark.slow
def test_device_script_dry_run_on_cpu(repo_root, tmp_path):
    """The GPU script's logic with DEVICE=cpu: every step runs and writes its files."""
    env = {**os.environ, "DEVICE": "cpu", "OUT": str(tmp_path), "BUDGET_S": "400"}
    if not (repo_root / ".venv" / "bin" / "python").exists():
        env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    proc = subprocess.run(["bash", str(repo_root / "benchmarks" / "device_speed.sh")],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "steps.log").read_text()
    for step in ("speed-a: exit 0", "packing: exit 0", "speed-b: exit 0"):
        assert step in log, log
    table = (tmp_path / "speed.md").read_text()
    assert "vit_s2_32" in table and "## packing" in table and "wrn_28_2" in table
    families = {r["family"] for r in plan.read_calibration(tmp_path / "calibration.csv")}
    assert {"vit", "bert", "wrn", "speech"} <= families
