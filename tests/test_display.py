"""Every user-facing object: a concise, deterministic repr and a static, escaped HTML repr.

The documents here carry markup and script; no HTML repr may let any of it through as markup,
and none may carry JavaScript of its own (so it renders on GitHub and nbviewer).
"""

from __future__ import annotations

import re

import pytest
from fakes import EchoLLM

HOSTILE = ("# Lava <script>alert('x')</script>\n\n"
           "Lava <img src=x onerror=alert(1)> flows \"downhill\" & cools into 'basalt' rock. "
           "Pahoehoe lava has a smooth, ropy surface.\n")


@pytest.fixture()
def objects(make_index, tmp_path):
    from ragbook.assistant import Assistant
    from ragbook.loaders import load

    folder = tmp_path / "geo"
    folder.mkdir()
    (folder / "lava <b>notes.md").write_text(HOSTILE, encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    index = make_index(chunk_size=64, overlap=8)
    report = index.add(folder)
    loaded = load(folder)
    results = index.search("lava basalt", k=2)
    bot = Assistant(index, name="<i>geo</i>", llm=EchoLLM(reply="Lava <script>x()</script> cools into basalt [1]. "
                                                             "Also [9]."))
    answer = bot.ask("What does lava cool into?")
    return {"document": loaded.documents[0], "chunk": index.chunks[0], "hit": results[0], "results": results,
            "report": report, "loaded": loaded, "index": index,
            "assistant": bot, "answer": answer, "template": bot.template}


NAMES = ["document", "chunk", "hit", "results", "report", "loaded", "index", "assistant", "answer", "template"]


@pytest.mark.parametrize("name", NAMES)
def test_html_repr_is_escaped_and_static(objects, name):
    html = objects[name]._repr_html_()
    assert html.strip()
    for raw in ("<script", "<img", "<b>notes", "<i>geo</i>"):
        assert raw not in html, f"{name}: {raw!r} got through"
    assert "javascript:" not in html.lower()
    # every attribute value is quoted, so escaped text cannot break out of one
    for tag in re.findall(r"<[a-zA-Z][^>]*>", html):
        bare = re.sub(r"'[^']*'|\"[^\"]*\"", "''", tag)  # quoted values are text, safely escaped
        assert not re.search(r"\son\w+\s*=", bare), f"{name}: an event handler in {tag}"
        for quote in re.findall(r"\s[\w-]+=(.)", bare):
            assert quote in "'\"", f"{name}: unquoted attribute in {tag}"


@pytest.mark.parametrize("name", NAMES)
def test_repr_is_short_and_deterministic(objects, name):
    text = repr(objects[name])
    assert text == repr(objects[name])
    assert " at 0x" not in text and len(text) < 300 and "\n" not in text


def test_answer_markers_reveal_source_page_and_passage(objects):
    answer = objects["answer"]
    html = answer._repr_html_()
    marker = re.search(r"<abbr[^>]*title='([^']*)'[^>]*>\[1\]</abbr>", html)
    assert marker, html
    assert "lava &lt;b&gt;notes.md" in marker.group(1) and "basalt" in marker.group(1)
    assert "[9] no such passage" in html and "color:#b00020" in html  # an invalid citation stands out
    assert "<details><summary>[1]" in html  # each passage can be opened below the answer


def test_results_table_shows_the_score_breakdown(objects):
    html = objects["results"]._repr_html_()
    assert "<table" in html and "dense" in html and "bm25" in html and "<mark>" in html


def test_the_renamed_helpers_keep_their_old_names_for_one_release():
    import ragbook
    from ragbook.answer import attribute, repair_citations
    from ragbook.progress import config

    assert attribute is repair_citations
    ragbook.set_progress(False)
    assert config.progress is False
    ragbook.set_progress(True)
    assert ragbook.config.progress is True
