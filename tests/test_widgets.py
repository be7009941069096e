"""The panels, driven from Python: set values, click, and check the state they leave behind."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from fakes import EchoLLM  # noqa: E402


@pytest.fixture(autouse=True)
def strict_callbacks(monkeypatch):
    """A bug inside a callback fails the test (ipywidgets would only log it; panels would show it)."""
    from ipywidgets.widgets.widget import CallbackDispatcher

    import ragbook.widgets._common as common

    def call_all(self, *args, **kwargs):
        value = None
        for callback in self.callbacks:
            value = callback(*args, **kwargs)
        return value

    monkeypatch.setattr(CallbackDispatcher, "__call__", call_all)
    monkeypatch.setattr(common, "STRICT", True)


@pytest.fixture()
def index(make_index, notes_dir):
    (notes_dir / "notes" / "unsafe.md").write_text(
        "# Unsafe\n\nThe <script>alert('x')</script> tag about lava is shown as text.\n", encoding="utf-8")
    idx = make_index(chunk_size=64, overlap=8)
    idx.add(notes_dir)
    return idx


@pytest.fixture()
def bot(index):
    from ragbook.assistant import Assistant

    return Assistant(index, name="Geo <101>", llm=EchoLLM(), k=3)


# -- inspector ------------------------------------------------------------------------------------

def test_inspector_controls_apply_live(index):
    from ragbook.widgets import Inspector

    panel = Inspector(index)
    panel.query.value = "Where does the Calvin cycle run?"
    assert panel.results is not None and len(panel.results) == 5
    assert "photosynthesis.md" in panel.results[0].source
    html = panel.hits.value
    assert "dense" in html and "bm25" in html and "<mark>" in html  # breakdown and highlighted terms
    assert "in context" in html  # the passage within its document

    panel.k.value = 2
    assert len(panel.results) == 2
    panel.mode.value = "bm25"
    assert panel.weight.disabled
    assert all(h.dense_score is None and h.bm25_score is not None for h in panel.results)
    panel.mode.value = "hybrid"
    panel.source.value = "*syllabus*"
    assert {h.source.split("/")[-1] for h in panel.results} == {"syllabus.txt"}
    panel.source.value = ""
    panel.mode.value = "dense"
    panel.min_on.value = True
    panel.min_score.value = 0.99
    assert len(panel.results) == 0 and "No passage matched" in panel.hits.value
    assert panel.error == ""


def test_inspector_shows_document_html_as_text_and_reports_bad_filters(index):
    from ragbook.widgets import Inspector

    panel = Inspector(index, "script tag lava")
    assert "&lt;<mark>script</mark>&gt;alert(" in panel.hits.value and "<script>" not in panel.hits.value
    panel.pages.value = "ten to twelve"
    assert "pages" in panel.error  # shown in the panel, not raised
    panel.pages.value = "1-3"
    assert panel.error == ""


def test_inspector_gives_its_settings_to_the_assistant(bot):
    from ragbook.widgets import Inspector

    panel = Inspector(bot, "volcano hazards")
    panel.k.value = 4
    panel.mmr_on.value = True
    panel.apply_button.click()
    assert bot.retriever.k == 4 and bot.retriever.mmr == pytest.approx(0.7)
    assert len(bot.search("volcano hazards")) == 4


def test_parse_pages():
    from ragbook.widgets.inspector import parse_pages

    assert parse_pages("") is None
    assert parse_pages("3-10") == (3, 10)
    assert parse_pages("1, 4 7") == [1, 4, 7]
    with pytest.raises(ValueError, match="first page"):
        parse_pages("9-2")


# -- chat -----------------------------------------------------------------------------------------

def test_chat_streams_and_shows_a_cited_answer(bot):
    from ragbook.widgets import Chat

    panel = Chat(bot, models=[("echo", "echo"), ("extractive", "extractive")])
    seen, status = [], []
    panel.live.observe(lambda change: seen.append(change["new"]), names="value")
    panel.status.observe(lambda change: status.append(change["new"]), names="value")
    panel.question.value = "Where is water split in photosynthesis?"
    panel.ask_button.click()
    answer = panel.answers[-1]
    assert answer.citations and answer.citations[0].valid
    assert any("you" in v and "&#9612;" in v for v in seen)  # tokens arrived before the end
    assert all("draft" in v for v in seen if "&#9612;" in v)  # shown as a draft until the checks have run
    # before the first words, the panel says what is happening: searching, then the model reading
    first_words = next(i for i, v in enumerate(seen) if "&#9612;" in v)
    assert any("searching the documents" in v for v in seen[:first_words])
    assert any("echo is reading" in v and "tokens" in v for v in seen[:first_words])
    assert any("is reading" in v for v in status) and any("checking the answer" in v for v in status)
    assert panel.live.value == "" and panel.question.value == ""
    assert "[1]" in panel.transcript.value and "photosynthesis.md" in panel.transcript.value
    assert "Where is water split" in panel.prompt.value  # the rendered prompt, escaped
    panel.show_prompt.value = True
    assert panel.prompt.layout.display == ""
    assert "llm answer from echo" in panel.status.value


def test_chat_pickers_and_reset(bot):
    from ragbook.widgets import Chat

    panel = Chat(bot, models=[("echo", "echo"), ("extractive", "extractive")])
    panel.template.value = "strict"
    assert bot.template.name == "strict"
    panel.model.value = "extractive"
    assert bot.extractive
    answer = panel.ask("What are shield volcanoes built by?")
    assert answer.mode == "extractive" and "basalt" in answer.text
    panel.ask("and what about their slopes?")
    assert len(bot.history) == 2
    panel.reset_button.click()
    assert bot.history == [] and panel.answers == [] and panel.transcript.value == ""


def test_chat_reports_an_empty_question_in_the_panel(bot):
    from ragbook.widgets import Chat

    panel = Chat(bot, models=[("echo", "echo")])
    panel.question.value = "   "
    panel.ask_button.click()
    assert "question is empty" in panel.error
    assert not panel.ask_button.disabled and panel.answers == []


def test_chat_escapes_the_assistant_name_and_answer(index):
    from ragbook.assistant import Assistant
    from ragbook.widgets import Chat

    bot = Assistant(index, name="<b>bot</b>", llm=EchoLLM(reply="Use <img src=x onerror=alert(1)> here [1]."))
    panel = Chat(bot, models=[("echo", "echo")])
    panel.ask("Tell me about lava")
    assert "<img" not in panel.transcript.value and "&lt;img" in panel.transcript.value
    assert "&lt;b&gt;bot&lt;/b&gt;" in panel.transcript.value


# -- builder --------------------------------------------------------------------------------------

def test_builder_builds_updates_and_reports(embedder, notes_dir, tmp_path):
    from ragbook.widgets import Builder

    (notes_dir / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    panel = Builder(paths=str(notes_dir), upload_dir=tmp_path / "up", embedding_model=embedder.name, out=str(tmp_path / "idx"))
    progress = []
    panel.bar.observe(lambda change: progress.append(change["new"]), names="max")
    built = []
    panel.on_build(built.append)
    panel.chunk_size.value = 64
    panel.overlap.value = 8
    panel.build_button.click()
    index = panel.index
    assert index is not None and len(index) > 0 and built == [index]
    assert index.chunk_size == 64
    assert "broken.pdf" in panel.report.value  # the bad file is listed with its reason
    assert progress, "the progress bar never moved"
    assert "chunks" in panel.stats.value and (tmp_path / "idx").exists()

    (notes_dir / "notes" / "syllabus.txt").write_text("Office hours moved to Fridays.\n", encoding="utf-8")
    panel.update_button.click()
    assert panel.index is index and [u.split("/")[-1] for u in index.last_report.updated] == ["syllabus.txt"]
    assert "Fridays" in index.search("When are office hours?", k=1)[0].text

    panel.chunk_size.value = 128
    panel.update_button.click()
    assert "chunk settings changed" in panel.error


def test_builder_uploads_are_sanitised_and_bad_ones_reported(embedder, tmp_path):
    from ragbook.widgets import Builder

    up = tmp_path / "uploads"
    panel = Builder(upload_dir=up, embedding_model=embedder.name)
    panel.save_uploads([
        {"name": "../../escape.md", "content": memoryview(b"# Escape\n\nUploaded lava notes.\n")},
        {"name": "C:\\Users\\me\\notes.txt", "content": b"Basalt is a volcanic rock."},
    ])
    assert sorted(p.name for p in up.iterdir()) == ["escape.md", "notes.txt"]
    assert not (tmp_path / "escape.md").exists()
    assert panel.error == ""
    panel.save_uploads([{"name": "virus.exe", "content": b"MZ"}, {"name": "..", "content": b"x"},
                        {"name": "empty.md", "content": b""}])
    assert "virus.exe" in panel.error and "empty" in panel.error and "not a usable file name" in panel.error
    panel.build_button.click()  # the uploads alone are enough to build
    assert {c.source.split("/")[-1] for c in panel.index.chunks} == {"escape.md", "notes.txt"}


def test_builder_reports_missing_paths(embedder, tmp_path):
    from ragbook.widgets import Builder

    panel = Builder(paths=str(tmp_path / "nowhere"), embedding_model=embedder.name, upload_dir=tmp_path / "up")
    panel.build_button.click()
    assert "does not exist" in panel.error and panel.index is None
    panel.paths.value = ""
    panel.build_button.click()
    assert "nothing to index" in panel.error


def test_safe_filename():
    from ragbook.widgets._common import safe_filename

    assert safe_filename("../../a b.md") == "a b.md"
    assert safe_filename("..\\..\\x.pdf") == "x.pdf"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert safe_filename("na\x00me;rm -rf.txt") == "na_me_rm -rf.txt"
    for bad in ("", "..", "/", "...."):
        with pytest.raises(ValueError):
            safe_filename(bad)


# -- compare and template editor -------------------------------------------------------------------

def test_compare_answers_with_two_configurations(bot):
    from ragbook.widgets import Compare

    panel = Compare(bot, {"mode": "bm25"}, models=[("echo", "echo"), ("extractive", "extractive")])
    panel.right.k.value = 2
    panel.right.model.value = "extractive"
    panel.question.value = "Which volcanoes are steep and explosive?"
    panel.ask_button.click()
    a, b = panel.answers
    assert a.mode == "llm" and b.mode == "extractive"
    assert panel.right.assistant.retriever.mode == "bm25" and panel.right.assistant.retriever.k == 2
    assert bot.retriever.mode == "hybrid" and bot.retriever.k == 3  # side A's assistant is untouched
    assert "Stratovolcanoes" in b.text
    assert "bm25 k=2" in panel.right.output.value and "in common" in panel.status.value
    first = panel.right.assistant
    panel.ask()
    assert panel.right.assistant is first  # the same settings reuse the same assistant (and model)


def test_template_editor_previews_and_applies(bot):
    from ragbook.widgets import TemplateEditor

    panel = TemplateEditor(bot, question="What are pyroclastic flows?")
    assert "pyroclastic" in panel.preview.value.lower() and "volcanoes.md" in panel.preview.value
    panel.fields["system"].value = "You are a <volcano> expert."
    assert "&lt;volcano&gt; expert" in panel.preview.value
    panel.fields["user"].value = "Passages: {passages} Q: {question} {oops}"
    assert "placeholder {oops}" in panel.error
    panel.fields["user"].value = "Passages:\n{passages}\n\nQ: {question}"
    assert panel.error == ""
    panel.name.value = "volcanologist"
    panel.use_button.click()
    assert bot.template.name == "volcanologist" and bot.template.system == "You are a <volcano> expert."
    panel.base.value = "research"
    assert panel.fields["system"].value.startswith("You are a careful research assistant")
    assert bot.template.name == "volcanologist"  # only "Use this template" changes the assistant


def test_template_editor_turns_the_worked_example_off_and_on(bot):
    from ragbook.prompt import TEMPLATES
    from ragbook.widgets import TemplateEditor

    panel = TemplateEditor(bot)
    assert panel.example.value and "borrowed book" in panel.preview.value
    panel.example.value = False  # e.g. for a model too small to tell the example from the question
    assert "borrowed book" not in panel.preview.value and panel.template.example is None
    panel.use_button.click()
    assert bot.template.example is None and bot.template.system == TEMPLATES["tutor"].system
    panel.example.value = True
    assert panel.template.example == TEMPLATES["tutor"].example and "borrowed book" in panel.preview.value
    custom = TemplateEditor(TEMPLATES["strict"].edit(example=None))
    assert not custom.example.value and "borrowed book" not in custom.preview.value
    custom.base.value = "research"
    assert custom.example.value and custom.template.example == TEMPLATES["research"].example


# -- the app and display ----------------------------------------------------------------------------

def test_app_tabs_rebuild_and_save(bot, notes_dir, tmp_path):
    import ragbook

    app = bot.panel()
    assert [app.tabs.get_title(i) for i in range(5)] == ["Chat", "Inspect", "Compare", "Template", "Build"]
    assert "Geo &lt;101&gt;" in app.header.value
    (notes_dir / "notes" / "new.md").write_text("# Geysers\n\nGeysers erupt hot water.\n", encoding="utf-8")
    app.builder.paths.value = str(notes_dir)
    app.builder.build_button.click()
    assert bot.index is app.builder.index and "geysers" in bot.search("geysers erupt")[0].text.lower()
    assert app.inspector.retriever.index is bot.index
    app.save_path.value = str(tmp_path / "geo.ragbook")
    app.save_button.click()
    assert app.error == "" and "ragbook.load" in app.status.value
    loaded = ragbook.load(tmp_path / "geo.ragbook", llm="extractive")
    assert len(loaded.index) == len(bot.index)


def test_panels_have_concise_reprs(bot):
    from ragbook.widgets import Chat, Inspector

    assert repr(Inspector(bot.index, "lava")).startswith("Inspector(query='lava', k=5, mode='hybrid', hits=5")
    assert repr(Chat(bot, models=[("echo", "echo")])) == "Chat(assistant='Geo <101>', model='echo', answers=0, last='')"
