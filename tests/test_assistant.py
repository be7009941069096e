from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import pytest
from fakes import EchoLLM, HashEmbedder

from ragbook._display import html_escape
from ragbook.answer import check_answer, repair_citations, split_sentences
from ragbook.assistant import Assistant, load_assistant
from ragbook.documents import Document
from ragbook.errors import BundleError
from ragbook.index import Index
from ragbook.prompt import TEMPLATES, Template, pack


@pytest.fixture()
def course(make_index, notes_dir):
    index = make_index()
    index.add(notes_dir)
    return index


def test_answer_cites_the_passage_it_used(course):
    bot = Assistant(course, llm=EchoLLM(), template="strict")
    answer = bot.ask("Where does the Calvin cycle take place?")
    assert answer.mode == "llm" and answer.citations and answer.citations[0].valid
    cited = answer.citations[0]
    assert cited.source == answer.passages[0].source and cited.text == answer.passages[0].text
    assert answer.passages[0].source.endswith("photosynthesis.md")
    assert "[1] course/notes/photosynthesis.md" in answer.prompt
    asked = answer.messages[-1]["content"]  # the real question comes last, after the worked example
    assert asked.index("Question:") < asked.index("End each sentence with the number")  # instruction after question
    assert answer.timings["retrieval"] > 0 and answer.timings["total"] >= answer.timings["generation"]
    assert answer.ok and "[1]" in str(answer)


def test_invalid_and_unsupported_citations_are_flagged(course):
    reply = "The Calvin cycle runs in the stroma [1]. Penguins live in Antarctica and eat krill [2]. It is fun [9]."
    answer = Assistant(course, llm=EchoLLM(reply=reply), k=2).ask("Where does the Calvin cycle run?")
    assert answer.invalid_citations == [9]
    flags = {c.sentence.split()[0]: c.flag for c in answer.checks}
    assert flags["The"] == "" and flags["Penguins"] == "unsupported" and flags["It"] == "invalid citation"
    assert not answer.ok
    html = answer._repr_html_()
    assert "no such passage" in html and "<details>" in html


def test_each_cited_sentence_shows_the_passage_sentence_behind_it(course):
    reply = ("The Calvin cycle runs in the stroma [1]. Penguins live in Antarctica and eat krill [2]. "
             "It is fun [9].")
    answer = Assistant(course, llm=EchoLLM(reply=reply), k=2).ask("Where does the Calvin cycle run?")
    evidence = {e.sentence.split()[0]: e for e in answer.evidence}
    calvin = evidence["The"]
    passage = answer.passages[calvin.n - 1].text
    assert passage[calvin.start:calvin.end] == calvin.quote and "stroma" in calvin.quote
    assert "Calvin" in calvin.quote and calvin.support >= 0.5 and calvin.n == 1
    assert "It" not in evidence  # an invalid citation has no passage to quote
    assert answer.to_dict()["evidence"][0]["quote"] == calvin.quote
    html = answer._repr_html_()
    assert f"<mark>{html_escape(calvin.quote)}</mark>" in html  # highlighted in its passage
    assert "\u201c" in html  # the citation's tooltip quotes the sentence, not the passage's start


SLICES = ("Slices\nThe slice s[2:5] starts at index 2 and goes up to but not including index 5. "
          "Strings are immutable: they cannot be changed after they are made.")


@pytest.mark.parametrize("template", ["tutor", "strict"])
def test_a_sentence_that_says_the_opposite_of_its_passage_is_flagged(tmp_path, template):
    from ragbook.index import Index

    (tmp_path / "slices.md").write_text(SLICES, encoding="utf-8")
    index = Index(HashEmbedder())
    index.add(tmp_path / "slices.md")
    wrong = "Yes, the slice s[2:5] includes the character at index 5 [1]. Strings are immutable [1]."
    answer = Assistant(index, llm=EchoLLM(reply=wrong), template=template, min_relevance=None).ask(
        "Does s[2:5] include index 5?")
    quote = "The slice s[2:5] starts at index 2 and goes up to but not including index 5."
    assert answer.raw_text == wrong
    if template == "strict":  # falls back to the passage's own sentence
        assert answer.text == f"The passage says: \u201c{quote}\u201d [1]"
        assert answer.ok and answer.citations[0].valid
        return
    assert not answer.ok and answer.flagged == ["Yes, the slice s[2:5] includes the character at index 5 [1]."]
    flagged = [c for c in answer.checks if c.flag]
    assert [(c.flag, c.quote) for c in flagged] == [("contradicts [1]", quote)]  # "immutable" is not flagged
    assert "! contradicts [1]: Yes, the slice" in str(answer) and f"the passage says: \u201c{quote}\u201d" in str(answer)
    html = answer._repr_html_()
    assert "contradicts [1]" in html and f"<q>{html_escape(quote)}</q>" in html
    assert answer.to_dict()["checks"][0]["quote"] == quote


@pytest.mark.parametrize("claim, passage, words", [
    ("No, s[2:5] does not include index 5.", "It goes up to but not including index 5.", set()),
    ("Strings can be changed after creation.", "Strings cannot be changed after creation.", {"chang"}),
    ("Strings are immutable.", "Strings are immutable: they cannot be changed.", set()),     # another clause
    ("The loop never stops.", "The loop stops when the condition is false.", {"stop"}),
    ("A tuple isn't mutable.", "A tuple is not mutable.", set()),
    ("You don't need a return statement.", "A function needs a return statement.", {"need"}),
    # a negation governs its verb, not the verb's object: no conflict over "character"
    ("No, it does not include the character at index 5.", "The last character is at index 4.", set()),
    # a negation about how much, not whether: "not stored exactly" is stored; "not always", "not only"
    ("No, 0.1 is not stored exactly as 0.1 [2].", "Computers store information using 0's and 1's.", set()),
    ("A dict is not always sorted.", "A dict is sorted by insertion order.", set()),
    ("Loops do not only run over lists.", "A for loop runs over lists.", set()),
    ("The value is not exactly equal to 0.1.", "The value is equal to 0.1.", {"equal"}),  # still not equal
    ("It is not stored.", "Computers store information using 0's and 1's.", {"store"}),
])
def test_polarity_conflicts(claim, passage, words):
    from ragbook.polarity import conflicts

    assert conflicts(claim, passage) == words


def test_evidence_is_escaped_and_picks_the_closest_sentence():
    from ragbook.answer import find_evidence

    text = "Lists can change. Strings <script>cannot</script> be changed once made. Tuples are fixed."
    start, end, support = find_evidence("Strings cannot be changed [1].", text)
    assert text[start:end] == "Strings <script>cannot</script> be changed once made." and support == 1.0
    assert find_evidence("Penguins eat krill.", text)[2] == 0.0
    from ragbook.answer import Evidence, _marked

    html = _marked(text, [Evidence("s", 1, text[start:end], start, end, support)])
    assert "<script>" not in html and "<mark>Strings &lt;script&gt;cannot&lt;/script&gt; be changed once made.</mark>" in html


def test_uncited_sentences_get_citations_from_matching_passages(course):
    reply = ("The Calvin cycle fixes carbon dioxide into sugar using ATP and NADPH. "
             "Penguins are flightless birds living in Antarctica.")
    answer = Assistant(course, llm=EchoLLM(reply=reply), k=3).ask("What does the Calvin cycle do?")
    assert answer.raw_text == reply
    n = next(i for i, h in enumerate(answer.passages, start=1) if "Calvin cycle fixes" in h.text)
    assert answer.text.startswith(f"The Calvin cycle fixes carbon dioxide into sugar using ATP and NADPH. [{n}]")
    first, second = answer.checks
    assert first.attributed and first.flag == "" and first.cites == [n]
    assert not second.attributed and second.flag == "unsupported"
    assert [c.n for c in answer.citations] == [n]


def test_a_citation_of_the_wrong_passage_is_corrected_and_said_so():
    passages = [SimpleNamespace(text="Reading rooms are open from 09:00 to 20:00 on weekdays."),
                SimpleNamespace(text="You may send each lab to Gradewell at most 6 times; only the last run counts.")]
    reply = ("You can send each lab to Gradewell at most 6 times [1]. Reading rooms open at 09:00 on weekdays [1]. "
             "Only the last Gradewell run counts [1][2]. The moon is made of cheese [1].")
    text, added = repair_citations(reply, passages)
    assert text == ("You can send each lab to Gradewell at most 6 times [2]. Reading rooms open at 09:00 on weekdays [1]. "
                    "Only the last Gradewell run counts [1][2]. The moon is made of cheese [1].")
    _, checks = check_answer(text, passages, attributed=added)
    assert [(c.cites, c.attributed, c.flag) for c in checks] == [
        ([2], True, ""),  # corrected: passage 1 holds none of it, passage 2 all
        ([1], False, ""),  # right already
        ([1, 2], False, ""),  # one of its citations backs it
        ([1], False, "unsupported"),  # no passage backs it: left as the model wrote it, and flagged
    ]
    text, _ = repair_citations("Send each lab to Gradewell at most 6 times [7], as said [1].", passages)
    assert text == "Send each lab to Gradewell at most 6 times [2], as said."  # the one number that backs it


def test_a_citation_of_a_passage_holding_half_a_sentence_moves_to_the_one_holding_all():
    passages = [SimpleNamespace(text="Individual list elements can be accessed directly using an index. Indexes begin "
                                     "at 0 and end at one less than the length of the sequence. Ex: For a sequence of "
                                     "50 elements, the first position is 0, and the last position is 49."),
                SimpleNamespace(text="Line 6 shows the use of the len() function to get the length of the list. "
                                     "Line 10 shows how to access an element using an index.")]
    reply = "The index of the last element in a list is one less than the length of the list [2]."
    text, added = repair_citations(reply, passages)
    assert text == reply.replace("[2]", "[1]") and len(added) == 1
    _, checks = check_answer(text, passages, attributed=added)
    assert checks[0].flag == "" and checks[0].attributed  # [1] compares ("less than"); [2] did not
    _, checks = check_answer(reply, passages)
    assert checks[0].flag == "unsupported"
    # a cited passage holding most of it keeps its citation, though another holds all of it
    reply = "Indexes begin at 0 and end at one less than the length of a list [2]."
    passages[1] = SimpleNamespace(text="Indexes end at one less than the length of the list.")  # 7 of its 9 words
    assert repair_citations(reply, passages)[0] == reply


def test_an_answer_says_which_citations_are_ragbooks(course):
    reply = "The Calvin cycle fixes carbon dioxide into sugar using ATP and NADPH."
    answer = Assistant(course, llm=EchoLLM(reply=reply), k=2).ask("What does the Calvin cycle do?")
    assert answer.raw_text == reply and answer.ragbook_cited == [answer.checks[0].sentence]
    assert "ragbook cited 1 sentence the model left uncited or cited wrongly" in str(answer)
    assert "answer.raw_text" in answer._repr_html_()
    plain = Assistant(course, llm=EchoLLM(reply=answer.text), k=2).ask("What does the Calvin cycle do?")
    assert plain.ragbook_cited == [] and "ragbook cited" not in str(plain)


def test_attribution_keeps_numbers_and_file_names_whole():
    passages = [SimpleNamespace(text="The sample standard deviation of the commute times is 16.91 minutes."),
                SimpleNamespace(text="Labs use Python 3.11; the notes are in notes.md.")]
    reply = "The standard deviation of the commute times is 16.91 minutes. Labs use Python 3.11, see notes.md."
    text, added = repair_citations(reply, passages)
    assert text == ("The standard deviation of the commute times is 16.91 minutes. [1] "
                    "Labs use Python 3.11, see notes.md. [2]")
    assert len(added) == 2
    _, checks = check_answer(text, passages)
    assert [c.cites for c in checks] == [[1], [2]] and not any(c.flag for c in checks)


def test_a_sentence_does_not_end_inside_inline_code():
    passages = [SimpleNamespace(text="The input() function shows a prompt and reads the name typed on the keyboard."),
                SimpleNamespace(text="The with statement opens the file and closes the file when its block ends.")]
    reply = ("Call `name = input('Your name? ')` to show a prompt and read the name typed. "
             "The `with open(...) as f:` statement closes the file when its block ends.")
    assert split_sentences(reply) == ["Call `name = input('Your name? ')` to show a prompt and read the name typed.",
                                      "The `with open(...) as f:` statement closes the file when its block ends."]
    text, _ = repair_citations(reply, passages)
    assert text == reply.replace("typed. ", "typed. [1] ") + " [2]"  # each citation after its sentence, none in code
    _, checks = check_answer(text, passages)
    assert [c.cites for c in checks] == [[1], [2]] and not any(c.flag for c in checks)
    # a line break inside code leaves a stray backtick on each line: it does not swallow the next sentence end
    passage = 'Given `"Hello my fellow\n classmates"` and a greeting, print the 5th character. Change `"Hi"` to `"hello"`.'
    assert split_sentences(passage)[-1] == 'Change `"Hi"` to `"hello"`.'


def test_an_answer_that_repeats_the_worked_example_is_flagged(course):
    example = TEMPLATES["tutor"].example.answer
    first = example.split(" [")[0]  # "You can keep each borrowed book for three weeks"
    reply = f"The Calvin cycle fixes carbon dioxide into sugar [1]. {first.upper()}  [2]."
    answer = Assistant(course, llm=EchoLLM(reply=reply), k=2).ask("What does the Calvin cycle do?")
    assert [c.flag for c in answer.checks] == ["", "copied example"]
    assert answer.flagged == [answer.checks[1].sentence] and not answer.ok
    assert "worked example" in str(answer) and "example=None" in answer._repr_html_()
    plain = Assistant(course, llm=EchoLLM(reply=reply), k=2, template=TEMPLATES["tutor"].edit(example=None))
    assert "copied example" not in [c.flag for c in plain.ask("What does the Calvin cycle do?").checks]


def test_abstains_when_nothing_relevant(course):
    llm = EchoLLM()
    answer = Assistant(course, llm=llm).ask("Who won the football world cup in 1998?")
    assert answer.abstained and answer.text.startswith("I don't know") and llm.calls == []


def test_extractive_mode_quotes_the_documents(course):
    answer = Assistant(course, llm="extractive").ask("What is the deadliest volcanic hazard?")
    assert answer.mode == "extractive" and answer.citations[0].valid
    assert "Pyroclastic flows" in answer.text and answer.text.rstrip().endswith("]")
    again = Assistant(course, llm="extractive").ask("What is the deadliest volcanic hazard?")
    assert again.text == answer.text  # deterministic


def test_streaming_yields_the_answer_text(course):
    bot = Assistant(course, llm=EchoLLM())
    stream = bot.stream("What does the Calvin cycle fix?")
    pieces = list(stream)
    assert len(pieces) > 3 and "".join(pieces).strip() == stream.answer.text


def test_a_stream_says_what_happens_before_the_first_words(course):
    heard: list[tuple[str, str, int]] = []
    bot = Assistant(course, llm=EchoLLM(), verify=False)
    stream = bot.stream("What does the Calvin cycle fix?", on_stage=lambda s, line: heard.append((s, line, len(pieces))))
    pieces: list[str] = []
    for piece in stream:
        pieces.append(piece)
    stages = [s for s, _, _ in heard]
    assert stages == ["searching", "reading", "writing", "checking", "done"] and stream.stage == "done"
    reading = heard[1]
    assert reading[2] == 0 and "is reading" in reading[1] and "tokens" in reading[1]  # said before any words
    assert heard[2][2] == 0 and heard[3][2] == len(pieces)  # "writing" as the first words come; "checking" after the last
    abstained: list[str] = []
    answer = bot.ask("What is the airspeed of an unladen swallow?")
    stream = bot.stream("What is the airspeed of an unladen swallow?", on_stage=lambda s, _: abstained.append(s))
    assert list(stream) and answer.abstained and abstained == ["searching", "done"]


def test_chat_rewrites_follow_ups(course):
    llm = EchoLLM()
    bot = Assistant(course, llm="extractive")
    first = bot.chat("What are shield volcanoes?")
    follow = bot.chat("and what are their hazards?")
    assert follow.query.startswith("What are shield volcanoes?")  # no LLM: previous question prepended
    assert follow.passages[0].source.endswith("volcanoes.md") and first.text
    bot.reset()
    assert bot.history == []

    class Rewriter(EchoLLM):
        def _answer(self, messages):
            if "Follow-up question" in messages[-1]["content"]:
                return "What hazards do volcanoes pose?"
            return super()._answer(messages)

    bot = Assistant(course, llm=Rewriter())
    bot.chat("Tell me about volcanoes")
    assert bot.chat("what about its dangers?").query == "What hazards do volcanoes pose?"
    del llm


def test_context_packing_drops_lowest_ranked_passages(course):
    hits = list(course.search("volcanoes lava photosynthesis exam", k=5))
    t = TEMPLATES["research"]
    full = pack(t, "q?", hits, render=lambda m: " ".join(x["content"] for x in m), count_tokens=lambda s: len(s.split()),
                context_window=10_000, answer_tokens=100)
    assert full.passages == hits and not full.dropped
    budget = full.prompt_tokens - 20 + 100
    packed = pack(t, "q?", hits, render=lambda m: " ".join(x["content"] for x in m), count_tokens=lambda s: len(s.split()),
                  context_window=budget, answer_tokens=100)
    assert packed.passages == hits[: len(packed.passages)] and packed.dropped == hits[len(packed.passages):]
    assert packed.prompt_tokens <= budget - 100 and packed.dropped
    with pytest.raises(ValueError, match="shorten the question"):
        pack(t, "long " * 500, hits, render=lambda m: " ".join(x["content"] for x in m),
             count_tokens=lambda s: len(s.split()), context_window=300, answer_tokens=100)


def test_bad_questions_get_clear_errors(course):
    bot = Assistant(course, llm=EchoLLM())
    with pytest.raises(ValueError, match="empty"):
        bot.ask("  ")
    with pytest.raises(ValueError, match="characters long"):
        bot.ask("why " * 2000)


def test_templates_are_editable_and_checked():
    tutor = TEMPLATES["tutor"].edit(system="You are Ms. Frizzle.")
    assert tutor.messages("q", [])[0]["content"] == "You are Ms. Frizzle."
    with pytest.raises(ValueError, match="placeholder"):
        Template.from_dict({"name": "x", "system": "hi", "user": "{passages} {question} {oops}"})
    with pytest.raises(ValueError, match="needs both"):
        Template.from_dict({"name": "x", "system": "hi", "user": "{question} only"})
    assert "<script>" not in Template(name="<script>", system="s", user="{passages}{question}")._repr_html_()


def test_templates_show_a_worked_example_first():
    research = TEMPLATES["research"]
    hits = [SimpleNamespace(chunk=SimpleNamespace(citation=lambda: "notes.md", text="The sky is blue."))]
    history = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]
    messages = research.messages("Why is the sky blue?", hits, history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    example = research.example
    assert messages[2]["content"] == example.answer and "[2]" in example.answer
    assert example.question in messages[1]["content"] and f"[2] {example.passages[1][0]}" in messages[1]["content"]
    assert messages[-1]["content"].startswith("Sources:\n\n[1] notes.md\n> The sky is blue.")  # passages are quoted
    assert "Why is the sky blue?" not in messages[1]["content"]

    bare = research.edit(example=None)
    assert [m["role"] for m in bare.messages("q", hits)] == ["system", "user"]
    assert Template(name="mine", system="s", user="{passages} {question}").example is None  # none unless asked for

    data = json.loads(json.dumps(research.to_dict()))
    assert data["example"]["passages"][0] == list(example.passages[0])
    assert Template.from_dict(data) == research
    assert Template.from_dict({**data, "example": None}) == bare
    with pytest.raises(ValueError, match="an example needs"):
        Template.from_dict({**data, "example": {"question": "q"}})
    with pytest.raises(ValueError, match="must be an Example"):
        research.edit(example={"question": "q"})
    assert "borrowed book" in research._repr_html_()


def test_save_and_load_one_file(course, tmp_path):
    bot = Assistant(course, name="Science 7", llm="extractive", template=TEMPLATES["research"].edit(name="mine"), k=3,
                    mode="hybrid", mmr=0.7, filters={"source": "*.md"})
    path = bot.save(tmp_path / "science")
    assert path.endswith("science.ragbook")
    back = load_assistant(path)
    assert back.name == "Science 7" and back.template.name == "mine" and back.retriever.k == 3
    assert back.template == bot.template and back.template.example == TEMPLATES["research"].example
    assert back.retriever.mmr == 0.7 and back.retriever.filters == {"source": "*.md"}
    q = "What is the deadliest volcanic hazard?"
    assert back.ask(q).text == bot.ask(q).text
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        settings = json.loads(zf.read("assistant.json"))
    assert "index/manifest.json" in names and settings["format_version"] == 1
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".pt", ".bin"))]


def test_damaged_or_tampered_files_are_refused(course, tmp_path):
    good = Assistant(course, llm="extractive").save(tmp_path / "good.ragbook")

    (tmp_path / "bad.ragbook").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BundleError, match="not a valid zip"):
        load_assistant(tmp_path / "bad.ragbook")

    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "evil.ragbook", "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("index/../../escape.txt", "gotcha")
    with pytest.raises(BundleError, match="outside"):
        load_assistant(tmp_path / "evil.ragbook")
    assert not (tmp_path / "escape.txt").exists()

    def rewrite(name, change):
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / name, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                result = change(item.filename, data)
                if result is not None:
                    dst.writestr(item.filename, result)
        return tmp_path / name

    future = rewrite("future.ragbook",
                     lambda n, d: json.dumps({**json.loads(d), "format_version": 7}) if n == "assistant.json" else d)
    with pytest.raises(BundleError, match="version 7"):
        load_assistant(future)
    missing = rewrite("missing.ragbook", lambda n, d: None if n.endswith("vectors.npy") else d)
    with pytest.raises(BundleError, match="damaged or incomplete"):
        load_assistant(missing)
    no_index = rewrite("noindex.ragbook", lambda n, d: None if n == "index/manifest.json" else d)
    with pytest.raises(BundleError, match="missing"):
        load_assistant(no_index)
    with pytest.raises(FileNotFoundError):
        load_assistant(tmp_path / "nope.ragbook")


def test_repr_and_html(course):
    bot = Assistant(course, name="<b>bio</b>", llm="extractive")
    assert repr(bot).startswith("Assistant(name='<b>bio</b>'") and "0x" not in repr(bot)
    assert "<b>bio</b>" not in bot._repr_html_()


def test_model_comes_from_the_environment_when_not_given(course, monkeypatch):
    loaded = []

    def fake_load_llm(spec=None):
        loaded.append(spec)
        return EchoLLM(name=str(spec))

    monkeypatch.setattr("ragbook.llm.load_llm", fake_load_llm)
    monkeypatch.setenv("RAGBOOK_LLM", "qwen2.5-coder-0.5b")
    bot = Assistant(course)
    assert bot.model_name == "qwen2.5-coder-0.5b" and loaded == []  # named, not loaded yet
    answer = bot.ask("Where does the Calvin cycle take place?")
    assert loaded == ["qwen2.5-coder-0.5b"] and answer.llm == "qwen2.5-coder-0.5b" and answer.mode == "llm"

    monkeypatch.setenv("RAGBOOK_LLM", "/models/mine.gguf")  # a path goes to load_llm as it is
    Assistant(course).ask("Where does the Calvin cycle take place?")
    assert loaded[-1] == "/models/mine.gguf"

    explicit = EchoLLM(name="explicit")  # a model given in the code wins over the environment
    assert Assistant(course, llm=explicit).ask("What does the Calvin cycle fix?").llm == "explicit"
    assert Assistant(course, llm="smollm2-135m").model_name == "smollm2-135m"

    monkeypatch.setenv("RAGBOOK_LLM", "")  # set but empty: the machine's best model, as when unset
    Assistant(course).ask("Where does the Calvin cycle take place?")
    assert loaded[-1] is None
    monkeypatch.delenv("RAGBOOK_LLM")
    Assistant(course).ask("Where does the Calvin cycle take place?")
    assert loaded[-1] is None and len(loaded) == 4


def test_extractive_from_the_environment(course, monkeypatch):
    monkeypatch.setenv("RAGBOOK_LLM", "extractive")
    monkeypatch.setattr("ragbook.llm.load_llm", lambda *a, **k: pytest.fail("no model may be loaded"))
    bot = Assistant(course)
    assert bot.extractive and bot.llm is None and bot.model_name == "extractive"
    answer = bot.ask("What is the deadliest volcanic hazard?")
    assert answer.mode == "extractive" and "Pyroclastic flows" in answer.text and answer.citations[0].valid


def test_save_refuses_python_filters(tmp_path):
    index = Index(HashEmbedder())
    index.add_documents([Document(text="hello world", source="a.txt")])
    bot = Assistant(index, llm="extractive", filters={"where": lambda c: True})
    with pytest.raises(ValueError, match="cannot be saved"):
        bot.save(tmp_path / "x.ragbook")


def test_the_environment_model_is_not_saved_into_files(course, monkeypatch, tmp_path):
    import json
    import zipfile

    monkeypatch.setenv("RAGBOOK_LLM", "extractive")
    Assistant(course).save(tmp_path / "env.ragbook")
    Assistant(course, llm="extractive").save(tmp_path / "chosen.ragbook")
    with zipfile.ZipFile(tmp_path / "env.ragbook") as z, zipfile.ZipFile(tmp_path / "chosen.ragbook") as y:
        settings = [json.loads(f.read(n)) for f, n in ((z, "assistant.json"), (y, "assistant.json"))]
    assert settings[0]["llm"] is None and settings[1]["llm"] == "extractive"
    monkeypatch.setenv("RAGBOOK_LLM", "smollm2-135m")
    back = Assistant.load(tmp_path / "env.ragbook")
    assert back.model_name == "smollm2-135m" and not back.extractive  # the machine that opens it decides


def test_a_saved_model_reference_displays_by_name(course):
    bot = Assistant(course, llm={"backend": "llama.cpp", "model": "/models/qwen/Qwen-7B-Q4.gguf", "sha256": {}})
    assert bot.model_name == "Qwen-7B-Q4.gguf" and "/models" not in repr(bot)
    assert Assistant(course, llm={"backend": "llama.cpp", "name": "qwen2.5-coder-0.5b"}).model_name == "qwen2.5-coder-0.5b"


def test_range_and_list_filters_survive_a_save(course, tmp_path):
    bot = Assistant(course, llm="extractive", filters={"page": (3, 10), "cell": [3, 10], "source": "*.md"})
    back = load_assistant(bot.save(tmp_path / "ranges"))
    # a range stays a range (pages 3 to 10), a list stays a list (cells 3 or 10)
    assert back.retriever.filters == {"page": (3, 10), "cell": [3, 10], "source": "*.md"}
    assert Assistant(course, llm="extractive", filters={"page": (None, 4)}).settings()["retrieval"]["filters"] == {
        "page": {"range": [None, 4]}}


def test_a_history_kept_elsewhere_is_read_but_not_changed(make_index, notes_dir):
    from ragbook.assistant import Assistant
    from ragbook.errors import SettingsError

    index = make_index()
    index.add(notes_dir)
    bot = Assistant(index, llm="extractive")
    turns = [("What happens in the Calvin cycle?", "It fixes carbon dioxide into sugar [1].")]
    stream = bot.stream("and where does it run?", history=turns)
    "".join(stream)
    assert "Calvin cycle" in stream.answer.query
    assert bot.history == [] and len(turns) == 1
    with pytest.raises(SettingsError, match="not both"):
        bot.stream("x", chat=True, history=turns)


LOOP = "Tuples are immutable, whereas lists are mutable [1]."


@pytest.mark.parametrize("text, loops, kept", [
    # one sentence until the token budget ran out, the last copy cut mid-way
    (f"A list is mutable [1]. {LOOP} {LOOP} {LOOP} Tuples are immu", True, f"A list is mutable [1]. {LOOP}"),
    # two sentences in turn
    ("Lists change in place. Tuples never change at all. " * 3, True, "Lists change in place. Tuples never change at all."),
    # said twice on purpose: kept
    (f"{LOOP} Strings are immutable too [1]. {LOOP}", False, f"{LOOP} Strings are immutable too [1]. {LOOP}"),
    # a code listing's short lines repeat: not a loop
    ("x = 1\nprint(x)\nprint(x)\nprint(x)\nDone.", False, "x = 1\nprint(x)\nprint(x)\nprint(x)\nDone."),
    # a program's output in a code block is the program's
    ("It prints [1]:\n```\n" + "Hello from the Python loop!\n" * 3 + "```", False,
     "It prints [1]:\n```\n" + "Hello from the Python loop!\n" * 3 + "```"),
    # a numbered loop goes with its numbers
    ("".join(f"{n}. Tuples are immutable objects [1].\n" for n in range(1, 5)), True,
     "1. Tuples are immutable objects [1]."),
    # said three times, but not in a row: an answer coming back to its point
    (f"{LOOP} A list grows [1]. {LOOP} A dict maps keys [1]. {LOOP}", False,
     f"{LOOP} A list grows [1]. {LOOP} A dict maps keys [1]. {LOOP}"),
    # a runaway: digits that never end a sentence; the sentence holding them says nothing and goes
    ("Recursion calls itself [1]. The factorial of 17 is 35568742809" + "0" * 300, True, "Recursion calls itself [1]."),
    ("Recursion calls itself [1]. The values are " + "0, " * 60 + "and 1. It stops [2].", True,
     "Recursion calls itself [1]. It stops [2]."),
    # a short sentence over and over is said once
    ("Yes. " * 20 + "Tuples are immutable [1].", True, "Yes. Tuples are immutable [1]."),
    # a program's output in a code block may repeat a short line; a rule line is not a runaway
    ("It prints [1]:\n```\n" + "Hello, world!\n" * 12 + "```", False, "It prints [1]:\n```\n" + "Hello, world!\n" * 12 + "```"),
    ("The table [1]:\n" + "=" * 80 + "\nname  age", False, "The table [1]:\n" + "=" * 80 + "\nname  age"),
])
def test_a_loop_is_said_once(text, loops, kept):
    from ragbook.answer import looping, without_repeats

    assert looping(text) is loops
    assert without_repeats(text) == kept


def test_the_model_is_stopped_when_it_falls_into_a_loop(course):
    """Greedy decoding can repeat one sentence until the token budget is spent (20 s on a laptop): the stream
    stops at the third copy, and the answer says it once; the model's words stay in raw_text."""
    class Looping(EchoLLM):
        def _answer(self, messages):
            return "Photosynthesis turns light into chemical energy [1]. " * 40

    llm = Looping()
    answer = Assistant(course, llm=llm, min_relevance=None, verify=False).ask("What does photosynthesis do?")
    assert answer.text == "Photosynthesis turns light into chemical energy [1]." and not answer.incomplete
    assert answer.raw_text.count("Photosynthesis turns") == 3  # stopped there, not after 40
    assert llm.last_generation.finish_reason == "cancelled"  # the backend has no counts: ragbook counts the words
    assert answer.tokens["completion"] == llm.count_tokens(answer.raw_text) > 0 and answer.tokens["prompt"] > 0


@pytest.mark.parametrize("sentence, flag", [
    ("Python is not slower than Java [1].", "unsupported"),  # the things compared are there, the comparison is not
    ("NSF grew to connect more than 100 universities [1].", "unsupported"),
    ("The Python interpreter appeared four years before Java [1].", ""),  # no comparison claimed
    ("Python is slower than C for loops [2].", ""),  # the passage compares
    ("A loop in Python runs slower than one in C [2].", ""),
    ("Python favours readability rather than brevity [3].", ""),  # "rather than" compares nothing
    ("The Python interpreter is faster than Java [1].", "unsupported"),  # the word before "than" is the comparative
])
def test_a_comparison_rests_on_a_passage_that_compares(sentence, flag):
    passages = [SimpleNamespace(text="The Python interpreter first appeared in 1991, four years before Java. NSF "
                                     "connected 100 universities."),
                SimpleNamespace(text="A loop in Python is slower than one in C."),
                SimpleNamespace(text="Python favours readability and brevity.")]
    _, checks = check_answer(sentence, passages)
    assert checks[0].flag == flag


def test_the_model_is_stopped_when_it_runs_away(course):
    """A run of a few characters over and over ("0, 0, 0, ...") never ends a sentence: the stream stops once it
    has run on a while, not at the token budget, and the sentence it ran away in is not shown."""
    class Running(EchoLLM):
        def _answer(self, messages):
            return "Photosynthesis turns light into chemical energy [1]. Its yields are " + "0, " * 1000

    answer = Assistant(course, llm=Running(), min_relevance=None, verify=False).ask("What does photosynthesis do?")
    assert answer.text == "Photosynthesis turns light into chemical energy [1]."
    assert 32 <= answer.raw_text.count("0,") < 100  # stopped once the run was long enough to tell, not after 1,000
    assert answer.incomplete and "over and over" in answer.incomplete_reason  # a sentence of it was left out
    looped = Assistant(course, llm=Running(reply=None), min_relevance=None, verify=False)
    looped.llm._answer = lambda messages: "Photosynthesis turns light into chemical energy [1]. " * 40
    assert not looped.ask("What does photosynthesis do?").incomplete  # a sentence loop is said once: nothing is lost


def test_a_loop_is_cut_for_a_model_that_streams_a_plain_iterator(course):
    """ChatModel.stream promises an iterator, not a generator: one without close() is simply left."""
    class Listed(EchoLLM):
        def _answer(self, messages):
            return "Photosynthesis turns light into chemical energy [1]. " * 10

        def stream(self, messages, **kwargs):
            return iter(list(super().stream(messages, **kwargs)))

    answer = Assistant(course, llm=Listed(), min_relevance=None, verify=False).ask("What does photosynthesis do?")
    assert answer.text == "Photosynthesis turns light into chemical energy [1]."
