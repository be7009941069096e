"""``ragbook.connect``: a served assistant from a student's notebook, against a real ``ragbook serve`` on 127.0.0.1.

The answers come back as Answer objects (citations resolved, evidence and display as local
ones); ``%ragbook use URL``, ``%%ask`` and the chat panel work with no model loaded here.
"""

from __future__ import annotations

import pytest
from _serving import TOKEN, course_bundle, free_port, serve

import ragbook
from ragbook.answer import Answer
from ragbook.errors import ServerError, SettingsError

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

QUESTION = "Where does the Calvin cycle run?"


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("remote")
    served = serve(course_bundle(root, embedder), root)
    yield served
    served.stop()


@pytest.fixture()
def bot(server):
    return ragbook.connect(f"{server.url}/#token={TOKEN}")


def test_connect_reads_the_token_from_the_shared_link(server, bot):
    assert bot.token == TOKEN and bot.url == server.url
    assert bot.name == "Biology 101" and bot.extractive and len(bot.index) > 0
    assert sorted(bot.index.files) == ["notes/photosynthesis.md", "notes/syllabus.txt", "notes/volcanoes.md"]
    assert repr(bot).startswith("RemoteAssistant(url=") and TOKEN not in repr(bot)
    assert "Biology 101" in bot._repr_html_()
    assert ragbook.connect(server.url, token=TOKEN).name == "Biology 101"


def test_a_wrong_token_or_no_server_is_a_clear_error(server):
    with pytest.raises(ServerError, match="class token") as caught:
        ragbook.connect(server.url, token="not-the-token")
    assert caught.value.status == 401
    with pytest.raises(ServerError, match="cannot reach .* is `ragbook serve` running"):
        ragbook.connect(f"http://127.0.0.1:{free_port()}", token=TOKEN, patience=0.5)
    with pytest.raises(SettingsError):
        ragbook.connect("ftp://example.org")


def test_ask_gives_an_answer_with_its_passages(bot):
    answer = bot.ask(QUESTION)
    assert isinstance(answer, Answer) and answer.mode == "extractive"
    cited = answer.citations[0]
    assert cited.valid and cited.source == "notes/photosynthesis.md"
    assert "Calvin cycle" in cited.hit.text
    assert answer.evidence and answer.evidence[0].quote in answer.passages[answer.evidence[0].n - 1].text
    assert "photosynthesis.md" in answer._repr_html_() and "[1]" in str(answer)
    off = bot.ask("Who won the football world cup in 1954?")
    assert off.abstained and off.citations == []


def test_stream_reports_stages_and_pieces(bot):
    stages = []
    stream = bot.stream(QUESTION, on_stage=lambda stage, text: stages.append(stage))
    text = "".join(stream)
    assert stream.answer is not None and text.strip() == stream.answer.text.strip()
    assert stages[0] == "waiting" and "searching" in stages and stages[-1] == "done"


def test_chat_keeps_the_conversation_here(bot):
    bot.chat("What happens in the Calvin cycle?")
    follow = bot.chat("and where does it run?")
    assert "Calvin cycle" in follow.query
    assert len(bot.history) == 2
    bot.reset()
    assert bot.history == []


def test_search_and_per_request_settings(bot):
    results = bot.search("deadliest volcanic hazard", k=2)
    assert len(results) == 2 and results[0].source == "notes/volcanoes.md" and results[0].relevance > 0
    assert "relevance" in results[0].explain()
    three = bot.copy(k=1)
    assert three.k == 1 and len(three.ask(QUESTION).passages) <= 1
    with pytest.raises(SettingsError, match="k= and mode= only"):
        bot.copy(template="strict")


@pytest.fixture()
def shell():
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ragbook")
    yield ip
    ip.run_line_magic("unload_ext", "ragbook") if "ragbook" in ip.extension_manager.loaded else None
    InteractiveShell.clear_instance()


def test_magics_use_a_served_assistant(server, shell):
    ip = shell
    used = ip.run_line_magic("ragbook", f"use {server.url}/#token={TOKEN}")
    assert used.name == "Biology 101"
    answer = ip.run_cell_magic("ask", "-k 2", QUESTION)
    assert answer.citations and answer.citations[0].source == "notes/photosynthesis.md"
    assert len(answer.passages) <= 2
    assert ip.run_line_magic("ask", QUESTION).mode == "extractive"
    used = ip.run_line_magic("ragbook", f"use {server.url} --token {TOKEN}")
    assert used.token == TOKEN
    chat = ip.run_line_magic("ragbook", "panel")
    assert chat.model.disabled and chat.template.disabled  # the server's model and template
    assert chat.ask(QUESTION).citations[0].source == "notes/photosynthesis.md"


def test_the_chat_panel_talks_to_the_server(bot):
    chat = bot.panel()
    answer = chat.ask(QUESTION)
    assert answer.citations[0].source == "notes/photosynthesis.md"
    assert "notes/photosynthesis.md" in chat.transcript.value and chat.live.value == ""
    assert "extractive answer" in chat.status.value and not chat.errors
