"""The notebooks in notebooks/ run top to bottom offline, and are committed without outputs.

Each notebook runs in its own copy of the repository's layout (notebooks/ beside corpora/) in a
temporary folder, so nothing is written into the checkout, with the kernel from this Python
environment and the tiny SmolLM2-135M model so that the answers come fast.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TEST_MODEL = "smollm2-135m"
ENV = {"RAGBOOK_LLM": TEST_MODEL, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAGBOOK_PROGRESS": "0",
       "TOKENIZERS_PARALLELISM": "false"}
CELL_TIMEOUT = 1200  # seconds a cell may take: SmolLM2 answers take minutes on a loaded 2-core machine
# The first cell the tests add: which Python runs the kernel (it must be this environment's).
_PROBE = "import sys; print(sys.executable)"


def _ids(paths):
    return [p.name for p in paths]


def copy_layout(dest: Path) -> Path:
    """notebooks/ and corpora/ as in the repository, under ``dest``; returns the notebooks folder."""
    ignore = shutil.ignore_patterns("output", ".ipynb_checkpoints", "*.ragbook")
    shutil.copytree(REPO / "notebooks", dest / "notebooks", ignore=ignore)
    shutil.copytree(REPO / "corpora", dest / "corpora")
    return dest / "notebooks"


def execute(path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] = ENV):
    """Run the notebook at ``path`` in its own folder; returns the executed notebook and the seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_PROBE))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    seconds = time.perf_counter() - started
    kernel_python = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve(), (
        f"the kernel ran {kernel_python}, not this environment's {sys.executable}")
    return nb, seconds


def output_text(nb) -> str:
    """Everything the notebook's cells printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_test_model_is_a_preset_that_is_installed():
    from ragbook.llm.presets import PRESETS, is_installed

    assert TEST_MODEL in PRESETS
    assert is_installed(PRESETS[TEST_MODEL]), f"pip install {' '.join(PRESETS[TEST_MODEL].distributions)}"


def test_there_are_the_notebooks_the_readme_lists():
    names = {p.name for p in NOTEBOOKS}
    for required in ("01-quickstart.ipynb", "02-course-assistant.ipynb", "03-tuning-retrieval.ipynb",
                     "05-saved-assistant.ipynb"):
        assert required in names
    readme = (REPO / "notebooks" / "README.md").read_text(encoding="utf-8")
    missing = [name for name in names if name not in readme]
    assert not missing, f"notebooks/README.md does not list {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for n, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {n} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {n} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_uses_paths_relative_to_the_notebooks_folder(path):
    import nbformat

    sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    absolute = re.findall(r"""["'](/(?:work|home|tmp|root|Users)/[^"']*)["']""", sources)
    assert not absolute, f"{path.name} uses absolute paths {absolute}: use paths relative to notebooks/ (../corpora)"
    assert "shared/" not in sources, f"{path.name} refers to the project's shared/ folder, which users do not have"


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


# Each runs a language model at least once, or builds an index from scratch: well over 20 s on 2 cores.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_top_to_bottom_offline(path, tmp_path, monkeypatch):
    before = _files(REPO / "notebooks")
    notebooks = copy_layout(tmp_path)
    nb, seconds = execute(notebooks / path.name, monkeypatch)
    print(f"{path.name}: {seconds:.1f} s")
    text = output_text(nb)
    if path.name == "01-quickstart.ipynb":
        assert "Loaded the prebuilt" not in text  # there is no ../data101.ragbook here: it built the assistant
        assert (notebooks / "output" / "data101.ragbook").is_file()
    if path.name == "02-course-assistant.ipynb":
        assert re.search(r"skipped \S*week-10-slides\.pdf: corrupt or truncated PDF", text), "the broken PDF was not reported"
        assert "same passages after saving and loading: True" in text
    assert _files(REPO / "notebooks") == before, "the notebook wrote into the checkout"
