"""The student page of ``ragbook serve`` in a real browser: Debian's chromium driven by Playwright.

Build a small assistant from corpora/, start the real server on 127.0.0.1, open the share link,
ask a question the documents answer and one they do not, open a cited passage, and check the
token form.  Screenshots go to artifacts/serve/.  Skipped where chromium is missing, except in CI
(.ci/run installs it), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from _chromium import chromium_browser, require_playwright
from _serving import TOKEN, serve
from conftest import REPO

ARTIFACTS = REPO / "artifacts" / "serve"
QUESTION = "How many times can I submit to the autograder?"
# "What is the capital of Mongolia?" is answered from a Python dictionary example in the notes; this one is not.
OFF_TOPIC = "What is the boiling point of tungsten?"
WAIT_MS = 120_000  # a loaded 2-core machine: the server loads the model, then answers

pytestmark = pytest.mark.slow

require_playwright()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, embedder) -> Path:
    """A .ragbook file built from corpora/ with the session's embedder (sources read ``corpora/...``)."""
    import ragbook

    path = tmp_path_factory.mktemp("serve") / "demo.ragbook"
    here = os.getcwd()
    os.chdir(REPO)  # relative paths in, relative source names out, as a teacher would build it
    try:
        index = ragbook.Index(embedder)
        index.add("corpora")
        ragbook.Assistant(index, name="Demo course", llm="extractive").save(path)
    finally:
        os.chdir(here)
    return path


@pytest.fixture(scope="module")
def server(bundle):
    """The real ``ragbook serve`` in a subprocess (its log in artifacts/serve/); yields its base URL."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    served = serve(bundle, ARTIFACTS, "--llm", "extractive")
    yield served.url
    served.stop()


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


def _ask(page, question: str):
    """Type a question, send it with Enter, and return the answer bubble once its final answer is shown."""
    before = page.locator(".answer").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".answer").nth(before)
    page.locator(".answer.done").nth(before).wait_for(timeout=WAIT_MS)
    return answer


def test_student_page_answers_with_citations_and_abstains(server, browser):
    corpus_files = {p.name for p in (REPO / "corpora").rglob("*") if p.is_file()}
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    crashes: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: crashes.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{server}/#token={TOKEN}", timeout=WAIT_MS)
        page.locator("#name").get_by_text("Demo course").wait_for(timeout=WAIT_MS)
        assert TOKEN not in page.url, "the token stays in the address bar"
        assert page.evaluate("sessionStorage.getItem('ragbook-token')") == TOKEN
        assert re.fullmatch(r"\d+ documents?", page.locator("#doc-count").inner_text())

        answer = _ask(page, QUESTION)
        assert "6" in answer.locator(".text").inner_text()  # the handbook allows 6 runs a lab
        cites = answer.locator("a.cite")
        assert cites.count() >= 1, "the answer has no citation marker"
        cites.first.click()
        passage = answer.locator(".passage").first
        passage.wait_for(timeout=10_000)
        where = passage.locator(".where").inner_text()
        assert any(name in where for name in corpus_files), where
        assert passage.locator(".ptext").inner_text().strip()
        assert answer.locator(".sources li").count() >= 1

        missing = _ask(page, OFF_TOPIC)
        assert "abstained" in (missing.get_attribute("class") or "")
        assert "Not in the documents" in missing.inner_text()
        page.screenshot(path=str(ARTIFACTS / "student-page.png"), full_page=True)

        page.click("#new")
        assert page.locator("#messages > *").count() == 0
        assert not crashes, crashes
        outside = [u for u in requests if not u.startswith(server)]
        assert not outside, f"the page loaded something from elsewhere: {outside}"
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "student-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def test_page_without_token_asks_for_it(server, browser):
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    try:
        page.goto(f"{server}/", timeout=WAIT_MS)
        page.locator("#token-form").wait_for(timeout=WAIT_MS)
        assert not page.locator("#ask-form").is_visible()
        page.screenshot(path=str(ARTIFACTS / "token-form.png"), full_page=True)
        page.fill("#token-input", "not-the-token")
        page.press("#token-input", "Enter")
        page.get_by_text("That token was not accepted.").wait_for(timeout=WAIT_MS)
        page.fill("#token-input", TOKEN)
        page.press("#token-input", "Enter")
        page.locator("#name").get_by_text("Demo course").wait_for(timeout=WAIT_MS)
        assert page.locator("#question").is_visible()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "token-failure.png"), full_page=True)
        raise
    finally:
        context.close()
