"""A question that names a term no document uses gets "I don't know" before any model runs."""

from __future__ import annotations

import pytest
from fakes import EchoLLM

from ragbook.assistant import Assistant, load_assistant
from ragbook.coverage import ANSWERED, GAIN, incidental, rare_by_tokenizer, unknown_terms, without
from ragbook.lexical import BM25

BOOK = [
    "A string is a sequence of characters. Strings are immutable: word[0] = 'J' raises a TypeError.",
    "Google Colaboratory runs notebooks in the browser. Lists are mutable; tuples are not.",
    "Use the open() function to read a file; the with statement closes it for you.",
    "The range(start, stop) sequence stops before stop. A dictionary maps keys to values.",
    "Matplotlib draws plots; seaborn draws statistical charts on top of it.",
]


@pytest.fixture(scope="module")
def bm25():
    return BM25().build(BOOK)


@pytest.fixture(scope="module")
def rare(embedder):
    return rare_by_tokenizer(embedder.tokenizer)


def test_the_tokenizer_tells_rare_words_from_everyday_ones(rare):
    for word in ("wont", "whats", "doesnt", "dunno"):  # why coverage passes over how students type
        assert rare(word), word
    for word in ("tkinter", "heatmap", "mangling", "JSON", "midterm", "enumerate"):
        assert rare(word), word
    for word in ("straight", "nobody", "nickname", "crashed", "forgot", "window", "library"):
        assert not rare(word), word


@pytest.mark.parametrize("question, expected", [
    ("How do I build a window with buttons using tkinter?", ["tkinter"]),
    ("How do I read and write JSON files in Python?", ["JSON"]),
    ("How do I draw a correlation heatmap with seaborn?", ["heatmap"]),  # seaborn is in the book
    ("When is the midterm exam?", ["midterm"]),
    ("How do I use tkinter and pygame together?", ["tkinter", "pygame"]),
    ("Why do I keep getting ZeroDivisionError?", ["ZeroDivisionError"]),  # named: a topic
])
def test_names_the_terms_no_document_uses(bm25, rare, question, expected):
    assert unknown_terms(question, bm25, rare) == expected


@pytest.mark.parametrize("question", [
    "Can I change one letter of a string by doing word[0] = 'J'?",
    "How do I stop print from jumping straight to a new line so nobody sees it?",  # everyday words
    "What is Google Colab?",  # an abbreviation of a word the documents use
    "Are strngs immutable?",  # a typo of a word they use
    "Is a dictionry mutable?",
    "What does `jsonify(x)` return?",  # code the student quotes is theirs, not a topic
    "Why does \"KeyboardInterruptz\" appear?",
    "What does my_heatmap_func do with total2?",  # the student's own identifiers
    "How do I open a file?",
    # how students type: contractions without their apostrophe, chat words
    "can i name a variable `class`? python wont care right?",
    "whats a tuple, i dunno why it doesnt change, thats weird",
    "Strings CANT change, youre sure? gonna need a list then",
    "weve tried everything, whatre we missing? i wouldve thought a tuple works bcuz its fixed",
    # a pasted error line is the student's own text, like a quote
    "ZeroDivisionError: float division by zero",
    "my loop says\nRecursionError: maximum recursion depth exceeded\nwhat now",
])
def test_does_not_fire_on_questions_the_documents_can_meet(bm25, rare, question):
    assert unknown_terms(question, bm25, rare) == []


def test_without_a_tokenizer_nothing_is_reported(bm25):
    assert unknown_terms("How do I use tkinter?", bm25, None) == []
    assert unknown_terms("How do I use tkinter?", BM25(), lambda w: True) == []


def test_a_term_only_in_a_removed_chunk_counts_as_unused(rare):
    import numpy as np

    bm = BM25().build(["tkinter builds windows.", "Lists are mutable."])
    assert unknown_terms("What is tkinter?", bm, rare) == []
    bm.update(np.array([False, True]), [])  # the chunk about tkinter is gone; its term stays in the vocabulary
    assert unknown_terms("What is tkinter?", bm, rare) == ["tkinter"]


def test_a_term_is_incidental_when_the_question_without_it_is_answered():
    assert without("In VSCode, how do I sort a list?", ["VSCode"]) == "In , how do I sort a list?"
    assert without("tkinter?", ["tkinter"]) == "?"
    assert without("Is JSONL like JSON?", ["JSON"]) == "Is JSONL like ?"  # whole words only
    assert incidental(0.45, ANSWERED)  # the rest finds a passage that answers it
    assert incidental(0.30, 0.30 + GAIN)  # or a clearly better one than the whole question did
    assert not incidental(0.30, 0.32) and not incidental(0.30, None)


def test_assistant_abstains_without_asking_the_model(course_index, tmp_path):
    llm = EchoLLM()
    bot = Assistant(course_index, llm=llm)
    answer = bot.ask("How do I make a window with tkinter?")
    assert answer.abstained and llm.calls == []
    assert answer.text.startswith("I don't know") and "never mention \u201ctkinter\u201d" in answer.text
    assert answer.unknown_terms == ["tkinter"] and answer.to_dict()["unknown_terms"] == ["tkinter"]
    assert answer.passages  # the closest passages stay on view

    answered = bot.ask("What does the Calvin cycle fix?")
    assert not answered.abstained and llm.calls and answered.unknown_terms == []

    # an editor named in passing: the question without it is answered, so it is asked
    passing = bot.ask("In VSCode, what does the Calvin cycle fix?")
    assert bot.unknown_terms("In VSCode, what does the Calvin cycle fix?") == []
    assert not passing.abstained and passing.unknown_terms == []

    off = bot.copy(abstain_unknown_terms=False)
    other = off.ask("How do I make a window with tkinter?")
    assert other.unknown_terms == [] and "tkinter" not in other.text  # the relevance gate, not this one

    path = off.save(tmp_path / "c.ragbook")
    assert load_assistant(path, llm=EchoLLM()).abstain_unknown_terms is False
    assert load_assistant(bot.save(tmp_path / "d.ragbook"), llm=EchoLLM()).abstain_unknown_terms is True


@pytest.fixture()
def course_index(make_index, notes_dir):
    index = make_index()
    index.add(notes_dir)
    return index
