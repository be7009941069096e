"""Answer metrics without a judge: SQuAD's EM and F1 by hand, citations, abstention, and a report."""

from __future__ import annotations

import pytest
from fakes import EchoLLM

from ragbook.answer import Answer
from ragbook.answer_metrics import (
    AnswerReport,
    answer_text,
    contains_answer,
    evaluate_answers,
    exact_match,
    is_abstention,
    is_correct,
    normalize_answer,
    token_f1,
)
from ragbook.qa import QAItem, QASet

# -- the formulas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, normal", [
    ("The  Eiffel Tower!", "eiffel tower"),
    ("an apple a day", "apple day"),
    ("Theatre, then: A-team", "theatre then ateam"),  # articles only as whole words; punctuation goes first
    ("  ", ""),
])
def test_normalize_answer_is_squads(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_takes_the_best_gold_answer():
    assert exact_match("the Eiffel tower.", ["Paris", "Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_token_f1_by_hand():
    # "in 10th century" vs "10th and 11th centuries": one shared token, P = 1/3, R = 1/4
    assert token_f1("in the 10th century", ["10th and 11th centuries"]) == pytest.approx(2 / 7)
    assert token_f1("in the 10th century", ["10th and 11th centuries", "10th century"]) == pytest.approx(0.8)
    # repeated tokens count as often as both sides have them: P = 2/3, R = 2/2
    assert token_f1("very very good", "very very") == pytest.approx(0.8)
    assert token_f1("Paris", "London") == 0.0


def test_unanswerable_means_the_empty_answer_is_right():
    assert exact_match("", []) == 1.0 and token_f1("", []) == 1.0
    assert exact_match("Paris", []) == 0.0 and token_f1("Paris", []) == 0.0
    assert token_f1("", ["Paris"]) == 0.0


def test_contains_answer_needs_whole_words():
    assert contains_answer("You may run it at most 6 times.", "6 times")
    assert not contains_answer("It ran 100 times", "10")
    assert contains_answer("The stroma.", ["nowhere", "the stroma"])
    assert not contains_answer("anything", ["", "the"])  # an empty gold answer is never found


def test_abstention_from_the_mode_or_the_words():
    assert is_abstention("I don't know: my documents don't cover that.")
    assert is_abstention("Sorry, I do not know.")
    assert not is_abstention("Nobody knows when it was built.")
    assert is_abstention("Not in the notes, sorry.", no_answer="Not in the notes.")
    assert is_abstention(Answer(question="q", text="(The closest passage is not about this.)", mode="abstained"))
    assert not is_abstention(Answer(question="q", text="Six times [1].", mode="llm"))


def test_answer_text_drops_markers_and_abstentions():
    assert answer_text("Six times [1]. Only the last run counts [2, 3].") == "Six times. Only the last run counts."
    assert answer_text("I don't know [1].") == ""


# -- an assistant over a question set --------------------------------------------------------------


class ScriptedLLM(EchoLLM):
    """Replies by question: what a model might say, fixed so that the scores can be worked out by hand."""

    def __init__(self, replies):
        super().__init__()
        self.replies = replies

    def _answer(self, messages):
        user = messages[-1]["content"]
        return next(reply for question, reply in self.replies.items() if question in user)


REPLIES = {
    "Where does the Calvin cycle run?": "It runs in the stroma [1].",               # F1 0.4, citation right
    # EM 1, citation wrong: ragbook re-cites it to the syllabus, the one passage holding both its words
    "What share of the grade is the final exam?": "45 percent [2].",
    "What is the capital of Australia?": "I don't know: my documents don't cover that.",  # right abstention
    "Which volcanoes are explosive?": "I don't know.",                               # false abstention
    "When did Mount Fuji last erupt?": "Mount Fuji is steep and explosive [1].",     # should have abstained
}
ITEMS = [
    QAItem("Where does the Calvin cycle run?", "calvin", sources=("photosynthesis.md",), answers=("the stroma",)),
    QAItem("What share of the grade is the final exam?", "exam", sources=("syllabus.txt",), answers=("45 percent",)),
    QAItem("What is the capital of Australia?", "capital", unanswerable=True),
    QAItem("Which volcanoes are explosive?", "strato", sources=("volcanoes.md",), answers=("Stratovolcanoes",)),
    QAItem("When did Mount Fuji last erupt?", "fuji", unanswerable=True),
]


@pytest.fixture()
def report(make_index, notes_dir):
    from ragbook.assistant import Assistant

    index = make_index()
    index.add(notes_dir)
    # the scripted model answers every question: ragbook's own abstentions are not what is scored here
    bot = Assistant(index, llm=ScriptedLLM(REPLIES), k=2, min_relevance=None, abstain_unknown_terms=False,
                    require_support=False)
    return evaluate_answers(bot, QASet(ITEMS, name="<b>set</b>"))


def test_rows_scored_by_hand(report):
    rows = {r["id"]: r for r in report}
    assert [r["id"] for r in report] == ["calvin", "exam", "capital", "strato", "fuji"]
    calvin = rows["calvin"]
    assert (calvin["em"], calvin["contains"], calvin["citations"], calvin["correct_citations"]) == (0.0, True, 1, 1)
    assert calvin["f1"] == pytest.approx(0.4)  # "it runs in stroma" vs "stroma"
    assert calvin["retrieved"] is True
    exam = rows["exam"]
    assert (exam["em"], exam["f1"], exam["correct_citations"]) == (1.0, 1.0, 1)  # [2] corrected to the syllabus
    assert rows["capital"]["abstained"] and rows["capital"]["em"] == 1.0 and rows["capital"]["correct_citations"] is None
    assert rows["strato"]["abstained"] and rows["strato"]["f1"] == 0.0 and rows["strato"]["contains"] is False
    assert not rows["fuji"]["abstained"] and rows["fuji"]["em"] == 0.0 and rows["fuji"]["contains"] is None


def test_summary_by_hand(report):
    s = report.summary
    assert (s["questions"], s["answerable"], s["unanswerable"]) == (5, 3, 2)
    assert s["em"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx((0.4 + 1 + 0) / 3)
    assert s["contains"] == pytest.approx(2 / 3)
    assert s["overall_em"] == pytest.approx(2 / 5)  # calvin 0, exam 1, capital 1, strato 0, fuji 0
    assert s["overall_f1"] == pytest.approx((0.4 + 1 + 1) / 5)
    assert s["citation_precision"] == pytest.approx(1.0)  # calvin 1/1, exam 1/1 (its citation corrected)
    assert s["cited"] == 1.0
    assert s["abstention_recall"] == 0.5  # capital yes, fuji no
    assert s["abstention_precision"] == 0.5  # abstained on capital (right) and strato (wrong)
    assert s["abstention_accuracy"] == pytest.approx(3 / 5)
    assert s["false_abstentions"] == pytest.approx(1 / 3)
    assert s["retrieved"] == 1.0
    assert report.settings["model"] == "echo" and report.settings["k"] == 2
    # judge-free verdicts: calvin and exam right, strato abstained wrongly, fuji answered (and cited) wrongly
    assert [r["correct"] for r in report] == [True, True, True, False, False]
    assert s["correct"] == pytest.approx(2 / 3)  # on the answerable questions
    assert [r["confidently_wrong"] for r in report] == [False, False, False, False, True]
    assert s["confidently_wrong"] == pytest.approx(1 / 5)
    assert s["wrong"] == pytest.approx(2 / 5)


# -- the judge-free verdict -----------------------------------------------------------------------

RANGE = ["no", "not included", "up to but not including 5", "stops before 5"]


@pytest.mark.parametrize("said, right", [
    ("No, range(2, 5) stops before 5 [1].", True),
    ("No [1].", True),
    ("Yes, the stop value itself is part of the sequence [4].", False),      # the wrong yes
    ("The stop value 5 is not included [2].", True),                          # no "no", judged on the phrasings
    ("The value 5 is included in the sequence [2].", False),                  # polarity: "included" is not "not included"
    ("It goes up to but not including 5 [1].", True),
    ("The sequence is 2, 3, 4 [1].", False),                                  # right, but says none of the phrasings
])
def test_yes_no_and_polarity(said, right):
    assert is_correct(said, RANGE) is right


@pytest.mark.parametrize("said, answers, right", [
    ("7 // 2 gives three [1].", ["3", "three"], True),                      # number words are digits
    ("The result is 3.0 [1].", ["3"], True),
    ("The result is 13 [1].", ["3"], False),                                 # whole words: 13 is not 3
    ("Strings cannot be changed once created: they are immutable [2].", ["immutable", "cannot be changed"], True),
    ("A list can be changed after it is created [1].", ["mutable", "can be changed"], True),
    ("A library is a set of code other programs can reuse [1].",            # paraphrase: token F1 >= 0.6
     ["collection of code that can be used in other programs"], False),
    ("A library is code that can be used in other programs [1].",
     ["collection of code that can be used in other programs"], True),
    ("Lists use square brackets and tuples use parentheses [1]. Tuples cannot be changed [2].",
     ["tuples cannot be changed", "tuples are immutable"], True),           # any sentence may say it
    ("Tuples can be changed [2].", ["tuples cannot be changed"], False),
])
def test_paraphrase_numbers_and_sentences(said, answers, right):
    assert is_correct(said, answers) is right


def test_abstention_is_right_only_when_unanswerable():
    assert is_correct("", [], unanswerable=True, abstained=True)
    assert not is_correct("Canberra [1].", [], unanswerable=True, abstained=False)
    assert not is_correct("", ["Canberra"], abstained=True)


def test_report_display_and_pandas(report):
    assert repr(report) == ("AnswerReport(questions=5, model='echo', em=0.3333, f1=0.4667, citation_precision=1.0, "
                            "abstention_recall=0.5, false_abstentions=0.3333)")
    html = report._repr_html_()
    assert "<b>set</b>" not in html and "&lt;b&gt;set&lt;/b&gt;" in html and "(unanswerable)" in html
    frame = report.to_pandas()
    assert frame.shape[0] == 5 and {"em", "f1", "abstained", "correct_citations"} <= set(frame.columns)
    assert report["f1"] == report.summary["f1"] and report[0]["id"] == "calvin"


def test_extractive_answers_are_deterministic(make_index, notes_dir):
    from ragbook.assistant import Assistant

    index = make_index()
    index.add(notes_dir)
    bot = Assistant(index, llm="extractive")
    qa = QASet(ITEMS[:2] + ITEMS[3:4])
    first, second = evaluate_answers(bot, qa), evaluate_answers(bot, qa)
    assert [r["answer"] for r in first] == [r["answer"] for r in second]
    assert first.summary["f1"] == second.summary["f1"] and first.settings["model"] == "extractive"
    assert all(r["mode"] == "extractive" and r["citations"] >= 1 for r in first)
    # the documents' own sentences: the exam's share and the volcano type are quoted whole
    assert {r["id"]: r["contains"] for r in first} == {"calvin": False, "exam": True, "strato": True}
    # each cited passage holds the answer, even where the quoted sentence does not
    assert {r["id"]: r["correct_citations"] for r in first} == {"calvin": 1, "exam": 1, "strato": 1}


def test_a_sample_and_a_file(make_index, notes_dir, tmp_path):
    from ragbook.assistant import Assistant

    index = make_index()
    index.add(notes_dir)
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "Where does the Calvin cycle run?", "answer": "stroma"}\n'
                    '{"question": "What is the capital of Australia?", "unanswerable": true}\n', encoding="utf-8")
    report = evaluate_answers(Assistant(index, llm="extractive"), path, limit=1)
    assert isinstance(report, AnswerReport) and len(report) == 1


@pytest.mark.parametrize("said, answers, right", [
    ("Opening a file that doesn't exist raises FileNotFoundError [1].", ["FileNotFoundError"], True),
    ("It does not raise FileNotFoundError [1].", ["FileNotFoundError"], False),
    ("The slice does not include 5 [1].", ["include 5"], False),
    ("When nothing is missing, the slice includes index 2 [1].", ["includes index 2"], True),
])
def test_a_negation_counts_only_next_to_the_phrasing(said, answers, right):
    assert is_correct(said, answers) is right


def test_a_citation_of_a_passage_without_the_answer_is_scored_wrong():
    from types import SimpleNamespace

    from ragbook.answer_metrics import score_answer
    from ragbook.documents import Chunk

    item = QAItem("What share of the grade is the final exam?", "exam", sources=("syllabus.txt",),
                  answers=("45 percent",))
    other = SimpleNamespace(chunk=Chunk(text="Homework is due on Fridays.", source="homework.md"), also_in=())
    answer = SimpleNamespace(text="45 percent [1].", mode="llm", checks=[], passages=[other],
                             citations=[SimpleNamespace(n=1, valid=True, hit=other, text=other.chunk.text)])
    row = score_answer(item, answer)
    assert row["correct_citations"] == 0 and row["citations"] == 1 and row["correct"] and not row["confidently_wrong"]
