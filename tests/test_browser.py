"""The app in a real browser: JupyterLab and Voila on 127.0.0.1, Debian's chromium driven by Playwright.

Open notebooks/app.ipynb, run it, ask in the chat panel and find a cited answer; move the k
control in the inspector and see the list change; check the kernel's own state; keep
screenshots in artifacts/browser/.  Skipped where chromium is missing, except in CI (.ci/run
installs it), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _chromium import chromium_browser, require_playwright
from conftest import REPO

ARTIFACTS = REPO / "artifacts" / "browser"
TOKEN = "ragbook-browser-test"
QUESTION = "How many times can I submit to the autograder?"
WAIT_MS = 180_000  # a loaded 2-core machine needs minutes for a kernel and the model

pytestmark = pytest.mark.slow

require_playwright()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _wait_for_port(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A temporary root holding notebooks/app.ipynb and corpora/, and the settings both servers share."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "corpora", root / "corpora")
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "app.ipynb", root / "notebooks" / "app.ipynb")
    config = root / ".jupyter-config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}), encoding="utf-8")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
           "RAGBOOK_LLM": "extractive", "HF_HUB_OFFLINE": "1", "RAGBOOK_PROGRESS": "0",
           "JUPYTER_PLATFORM_DIRS": "1"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return root, env


def _serve(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


def _ask_in_chat(page) -> None:
    box = page.get_by_placeholder("Ask DATA 101 course assistant about its documents...")
    box.wait_for(timeout=WAIT_MS)
    box.fill(QUESTION)
    box.dispatch_event("change")  # the text box sends its value on change/blur
    page.get_by_role("button", name=re.compile(r"^\W*Ask$")).click()
    answer = page.locator(".ragbook-answer").first
    answer.wait_for(timeout=WAIT_MS)
    assert answer.locator("sup").count() >= 1, "the answer has no citation marker"
    sources = answer.locator("summary").all_inner_texts()
    assert any("corpora/" in s for s in sources), sources
    assert "6" in answer.inner_text()  # the notes allow 6 submissions


def _kernel_state(root: Path, port: int, code: str) -> str:
    """Run ``code`` in the notebook's own kernel through its connection file; return what it printed."""
    from jupyter_client import BlockingKernelClient

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={TOKEN}", timeout=10) as r:
        sessions = json.load(r)
    kernel_id = sessions[0]["kernel"]["id"]
    client = BlockingKernelClient(connection_file=str(root / ".runtime" / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out: list[str] = []
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: out.append(
            msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        client.stop_channels()


def test_jupyterlab_app_answers_and_the_inspector_follows_k(site, browser):
    root, env = site
    port = _free_port()
    server = _serve([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                     f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={TOKEN}",
                     f"--ServerApp.root_dir={root}"], env, root, ARTIFACTS / "jupyterlab.log")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={TOKEN}")
        page.goto(f"http://127.0.0.1:{port}/lab/tree/notebooks/app.ipynb?token={TOKEN}", wait_until="commit",
                  timeout=WAIT_MS)
        # wait for the kernel itself to be idle (the toolbar says "idle" before any kernel exists)
        page.locator("#jp-main-statusbar").get_by_text("Idle").wait_for(timeout=WAIT_MS)
        page.get_by_role("menuitem", name="Run").click()
        page.get_by_text("Run All Cells", exact=True).click()

        _ask_in_chat(page)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-chat.png"), full_page=True)

        page.get_by_role("tab", name="Inspect", exact=True).click()
        query = page.get_by_placeholder("a question or some keywords")
        query.fill("autograder submissions")
        query.press("Enter")
        hits = page.locator(".ragbook-hit")
        hits.first.wait_for(timeout=WAIT_MS)
        page.wait_for_function("document.querySelectorAll('.ragbook-hit').length == 3", timeout=WAIT_MS)
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowLeft")  # k: the assistant's 3 -> 2
        page.wait_for_function("document.querySelectorAll('.ragbook-hit').length == 2", timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-inspector.png"), full_page=True)
        use = page.get_by_role("button", name=re.compile("Use these settings"))
        assert use.evaluate("b => b.scrollWidth <= b.clientWidth"), "the button's label is cut off"

        state = _kernel_state(root, port, "print(app.inspector.k.value, len(app.inspector.results), "
                                          "len(app.chat.answers), app.chat.answers[-1].citations[0].source)")
        k, hits_n, answers, source = state.split()
        assert (k, hits_n, answers) == ("2", "2", "1")
        assert source.startswith("corpora/")

        # upload a file whose name tries to leave the upload folder, then update the index
        page.get_by_role("tab", name="Build", exact=True).click()
        with page.expect_file_chooser(timeout=WAIT_MS) as chooser:
            page.get_by_role("button", name=re.compile(r"Upload files")).click()
        chooser.value.set_files(files=[{
            "name": "../../field-trip.md", "mimeType": "text/markdown",
            "buffer": b"# Field trip\n\nThe DATA 101 field trip visits the city archive on May 3.\n"}])
        page.get_by_text("1 file(s) uploaded").wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name=re.compile(r"^\W*Update$")).click()
        page.get_by_text("Updating done").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-builder.png"), full_page=True)
        state = _kernel_state(root, port, "print([p.name for p in app.builder.uploaded], "
                                          "all(p.parent == app.builder.upload_dir for p in app.builder.uploaded), "
                                          "bot.search('When is the field trip?')[0].source.endswith('field-trip.md'))")
        assert state.strip() == "['field-trip.md'] True True"
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"), full_page=True)
        raise
    finally:
        page.close()
        _stop(server)


def test_voila_page_answers(site, browser):
    root, env = site
    port = _free_port()
    server = _serve([sys.executable, "-m", "voila", "notebooks/app.ipynb", "--no-browser", f"--port={port}",
                     "--Voila.ip=127.0.0.1"], env, root, ARTIFACTS / "voila.log")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _wait_for_port(port)  # every GET of the page starts a kernel: only check that it listens
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=WAIT_MS)
        _ask_in_chat(page)
        assert page.locator(".jp-CodeCell .jp-InputArea:visible").count() == 0  # a page for students: no code cells
        page.screenshot(path=str(ARTIFACTS / "voila.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "voila-failure.png"), full_page=True)
        raise
    finally:
        page.close()
        _stop(server)
