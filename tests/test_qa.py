"""Teacher question sets: reading CSV/JSONL/JSON, clear errors, source matching, retrieval scores."""

from __future__ import annotations

import json
import math

import pytest

from ragbook.documents import Chunk
from ragbook.qa import QAItem, QASet, evaluate_qa_retrieval, format_table, load_qa, ranked_targets, source_matches
from ragbook.retrieval import Hit

# -- reading --------------------------------------------------------------------------------------


def test_csv_columns_multiple_answers_pages_and_metadata(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        "\ufeffQuestion,Source,Page,Answer,Unanswerable,Topic\n"
        'How many grace days?,00-syllabus.md,,four|4,,"late work, grace"\n'
        "How often can I run the autograder?,handbook.pdf|guide.pdf,3-5,6 times,no,\n"
        "\n"
        "Who won the 1998 world cup?,,,,yes,\n",
        encoding="utf-8",
    )
    qa = load_qa(path)
    assert [q.id for q in qa] == ["q1", "q2", "q3"]
    first, second, third = qa
    assert first.answers == ("four", "4") and first.sources == ("00-syllabus.md",) and first.pages == ()
    assert first.metadata == {"topic": "late work, grace"}
    assert second.sources == ("handbook.pdf", "guide.pdf") and second.pages == (3, 4, 5) and not second.unanswerable
    assert third.unanswerable and not third.judged and third.answers == ()
    assert qa.name == "qa.csv" and len(qa) == 3 and qa.unanswerable == 1
    assert repr(qa) == "QASet(name='qa.csv', questions=3, unanswerable=1, with_source=2, with_answer=2)"


def test_semicolon_csv_and_tsv(tmp_path):
    (tmp_path / "qa.csv").write_text("question;source;page\nWhere?;a.pdf;2\n", encoding="utf-8")
    assert load_qa(tmp_path / "qa.csv")[0].pages == (2,)
    (tmp_path / "qa.tsv").write_text("id\tquestion\tsource\nx1\tWhere, then?\ta.md\n", encoding="utf-8")
    item = load_qa(tmp_path / "qa.tsv")[0]
    assert (item.id, item.question, item.sources) == ("x1", "Where, then?", ("a.md",))


def test_jsonl_with_lists_and_squad_keys(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"id": 7, "question": "Where?", "source": ["a.md", "b.md"], "page": 4, "answers": ["here", "there"]},
        {"id": "s1", "question": "What dries?", "answers": ["Paint"], "is_impossible": False, "gold_doc_ids": ["Art_0"]},
        {"id": "s2", "question": "What flies?", "answers": [], "is_impossible": True, "gold_doc_ids": []},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")
    qa = load_qa(path)
    assert [q.id for q in qa] == ["7", "s1", "s2"]
    assert qa[0].sources == ("a.md", "b.md") and qa[0].pages == (4,) and qa[0].answers == ("here", "there")
    assert qa[1].sources == ("Art_0",) and qa[1].judged
    assert qa[2].unanswerable and not qa[2].judged


def test_json_list_and_squad_folder(tmp_path):
    (tmp_path / "qa.json").write_text(json.dumps({"questions": [{"question": "Why?", "answer": "because"}]}),
                                      encoding="utf-8")
    assert load_qa(tmp_path / "qa.json")[0].answers == ("because",)
    (tmp_path / "questions.jsonl").write_text('{"id": "a", "question": "Q?", "answers": ["x"]}\n', encoding="utf-8")
    assert load_qa(tmp_path).path.endswith("questions.jsonl")


@pytest.mark.parametrize("name, text, message", [
    ("q.csv", "source,answer\na.md,x\n", r"line 1: no 'question' column \(the header has: source, answer\)"),
    ("q.csv", "question,source\nWhere?,a.md\n ,b.md\n", r"line 3: the question is empty"),
    ("q.csv", "question,page\nWhere?,four\n", r"line 2: page 'four' is not a page number"),
    ("q.csv", "question,page\nWhere?,0\n", r"line 2: pages are numbered from 1"),
    ("q.csv", "question,page\nWhere?,9-3\n", r"line 2: page range '9-3' runs backwards"),
    ("q.csv", "question,unanswerable\nWhere?,maybe\n", r"line 2: unanswerable must be true or false"),
    ("q.csv", "question,answer,unanswerable\nWhere?,here,yes\n", r"line 2: the question is marked unanswerable"),
    ("q.csv", "question,source\nWhere?,a.md,b.md\n", r"line 2: 3 values for 2 columns"),
    ("q.csv", "id,question\na,One?\na,Two?\n", r"line 3: id 'a' is used twice \(first on line 2\)"),
    ("q.csv", "question,question\nOne?,Two?\n", r"line 1: column 'question' appears twice"),
    ("q.csv", 'question,answer\n"multi\nline?",x\nWhere?,\n,y\n', r"line 5: the question is empty"),
    ("q.csv", "question,source\n", r"no questions found"),
    ("q.jsonl", '{"question": "One?"}\n{"question": "Two?",\n', r"line 2: not JSON"),
    ("q.jsonl", '["question", "One?"]\n', r"line 1: expected an object"),
    ("q.jsonl", '{"question": "One?", "answer": {"text": "x"}}\n', r"line 1: answer must be text or a list"),
    ("q.jsonl", '{"question": "One?", "answer": "x", "answers": ["y"]}\n', r"line 1: give 'answer' or 'answers'"),
    ("q.jsonl", '\n{"question": 3}\n', r"line 2: the question is empty or missing"),
    ("q.json", '{"question": "One?"}', r"line 1: expected a list of questions"),
    ("q.json", '[\n  {"question": "One?"},\n  {"question": "Two?",\n   "page": "x"}\n]', r"line 3: page 'x'"),
    ("q.json", '[\n  {"question": "One?"\n]', r"line 3: not JSON"),
    ("q.xlsx", "question\nOne?\n", r"unknown question file type '.xlsx'"),
])
def test_bad_rows_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_qa(path)
    assert str(path) in str(info.value)


def test_missing_file_or_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such question file"):
        load_qa(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="questions.jsonl"):
        load_qa(tmp_path)


def test_sample_is_reproducible_and_keeps_file_order():
    qa = QASet([QAItem(f"Question {i}?", f"q{i}") for i in range(30)], name="x")
    picked = [q.id for q in qa.sample(7)]
    assert picked == [q.id for q in qa.sample(7, seed=0)] and len(picked) == 7
    assert picked == sorted(picked, key=lambda i: int(i[1:]))
    assert picked != [q.id for q in qa.sample(7, seed=1)]
    assert qa.sample(None) is qa and qa.sample(99) is qa
    with pytest.raises(ValueError):
        qa.sample(0)


def test_qaset_html_escapes_questions():
    qa = QASet([QAItem("<script>alert(1)</script>?", "q1", answers=("a & b",))])
    html = qa._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &amp; b" in html


# -- matching and ranking ----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, expected", [
    ("syllabus.txt", True), ("notes/syllabus.txt", True), ("course/notes/syllabus.txt", True),
    ("../course/notes/SYLLABUS.txt", True), ("./notes/*.txt", True), ("*.txt", True), ("notes\\syllabus.txt", True),
    ("abus.txt", False), ("other/syllabus.txt", False), ("*.md", False), ("", False),
])
def test_source_matches_names_path_endings_and_globs(pattern, expected):
    assert source_matches("course/notes/syllabus.txt", pattern) is expected


def _hits(*places):
    return [Hit(chunk=Chunk(text=f"passage {i}", source=src, page=page), score=1.0 - i / 10, rank=i + 1)
            for i, (src, page) in enumerate(places)]


def test_each_expected_source_counts_once_at_its_first_passage():
    item = QAItem("Q?", "q1", sources=("a.md", "b.pdf"))
    hits = _hits(("x/x.md", None), ("docs/b.pdf", 2), ("a.md", None), ("b.pdf", 3), ("a.md", None))
    ranked = ranked_targets(item, hits)
    assert ranked == ["#1", "b.pdf", "a.md", "#4", "#5"]


def test_page_must_match_when_given():
    item = QAItem("Q?", "q1", sources=("handbook.pdf",), pages=(4,))
    assert ranked_targets(item, _hits(("handbook.pdf", 3), ("handbook.pdf", 4))) == ["#1", "handbook.pdf"]
    only_page = QAItem("Q?", "q2", pages=(2, 3))
    assert only_page.targets() == ["*"]
    assert ranked_targets(only_page, _hits(("a.pdf", 1), ("b.pdf", 3))) == ["#1", "*"]


def test_a_passage_stored_once_for_two_files_credits_both():
    item = QAItem("Q?", "q1", sources=("copy.md",))
    hit = _hits(("orig.md", None))[0]
    hit.also_in = [Chunk(text="passage 0", source="copy.md")]
    assert ranked_targets(item, [hit]) == ["copy.md"]


# -- retrieval on a real index -------------------------------------------------------------------------

QUESTIONS = ("question,source,answer,unanswerable\n"
             "Where does the Calvin cycle run?,photosynthesis.md,stroma,\n"
             "What share of the grade is the final exam?,notes/syllabus.txt,45 percent,\n"
             "Which hazard of volcanoes is the deadliest?,volcanoes.md|syllabus.txt,pyroclastic flows,\n"
             "What is the capital of Australia?,,,yes\n")


@pytest.fixture()
def notes_index(make_index, notes_dir):
    index = make_index(chunk_size=64, overlap=8)
    index.add(notes_dir)
    return index


@pytest.fixture()
def questions(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text(QUESTIONS, encoding="utf-8")
    return load_qa(path)


def test_retrieval_report_on_a_real_index(notes_index, questions):
    report = evaluate_qa_retrieval(notes_index, questions, k=3, mode="bm25")
    assert len(report) == 3 and report.k == 3  # the unanswerable question is not scored
    assert report.settings["mode"] == "bm25"
    rows = {r["id"]: r for r in report}
    assert rows["q1"]["rank"] == 1 and rows["q1"]["hit@3"] == 1.0 and rows["q1"]["ndcg@3"] == 1.0
    assert rows["q2"]["mrr@3"] == 1.0
    # two expected sources: volcanoes.md is first, syllabus.txt is not in the top 3
    third = rows["q3"]
    assert third["recall@3"] in (0.5, 1.0) and third["mrr@3"] == 1.0
    for metric in ("hit@3", "recall@3", "mrr@3", "ndcg@3"):
        assert report[metric] == pytest.approx(sum(r[metric] for r in report) / 3)
    again = evaluate_qa_retrieval(notes_index, questions, k=3, mode="bm25")
    assert again.rows == report.rows and again.summary["ndcg@3"] == report.summary["ndcg@3"]
    assert repr(report).startswith("RetrievalReport(questions=3, k=3, mode='bm25', hit@3=1.0")
    frame = report.to_pandas()
    assert list(frame["id"]) == ["q1", "q2", "q3"] and "ndcg@3" in frame.columns


def test_retrieval_with_a_second_source_scores_recall_and_ndcg_by_hand(notes_index, questions):
    report = evaluate_qa_retrieval(notes_index, questions, k=10, mode="dense")  # dense ranks every passage
    row = next(r for r in report if r["id"] == "q3")
    hits = list(notes_index.search(questions[2].question, k=10, mode="dense"))
    ranks = [next(h.rank for h in hits if source_matches(h.source, s)) for s in ("volcanoes.md", "syllabus.txt")]
    dcg = sum(1 / math.log2(r + 1) for r in ranks)
    assert row["recall@10"] == 1.0
    assert row["ndcg@10"] == pytest.approx(dcg / (1 + 1 / math.log2(3)))


def test_assistant_settings_are_used_and_can_be_overridden(notes_index, questions):
    from ragbook.assistant import Assistant

    bot = Assistant(notes_index, llm="extractive", k=2, mode="dense")
    report = evaluate_qa_retrieval(bot, questions)
    assert report.k == 2 and report.settings["mode"] == "dense"
    assert evaluate_qa_retrieval(bot, questions, k=4, mode="hybrid").settings["mode"] == "hybrid"
    assert bot.retriever.k == 2  # the assistant itself is unchanged
    assert len(evaluate_qa_retrieval(bot, questions, limit=2)) <= 2
    with pytest.raises(TypeError, match="Index or an Assistant"):
        evaluate_qa_retrieval("not an index", questions)


def test_misses_and_html(notes_index, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,source\n<b>Calvin</b> cycle?,nowhere.md\n", encoding="utf-8")
    report = evaluate_qa_retrieval(notes_index, load_qa(path), k=2)
    assert report["hit@2"] == 0.0 and [r["id"] for r in report.misses()] == ["q1"]
    html = report._repr_html_()
    assert "<b>Calvin</b>" not in html and "&lt;b&gt;Calvin&lt;/b&gt;" in html and "missed" in html


def test_format_table_aligns_numbers():
    text = format_table([{"mode": "dense", "ndcg": 0.5}, {"mode": "bm25", "ndcg": 1.0}])
    assert text.splitlines() == ["mode     ndcg", "dense  0.5000", "bm25   1.0000"]


@pytest.mark.parametrize("name", ["openstax-teacher", "openstax-heldout", "openstax-unseen", "openstax-yesno"])
def test_the_teacher_question_sets_load_with_gold_and_evidence(name):
    """benchmarks/trust.py's sets: each answerable question has gold phrasings and the book sentence that
    answers it (a yes/no one leads with its yes or no); each unanswerable one has neither (in the yes/no set it
    keeps its kind: a yes/no question the book does not answer)."""
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "data" / f"{name}.jsonl"
    qa = load_qa(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(qa) == len(rows) >= 40 and len({q.id for q in qa}) == len(qa)
    for item, row in zip(qa, rows):
        assert item.unanswerable == row["unanswerable"]
        if item.unanswerable:
            assert not item.answers and row["kind"] == ("yes/no" if name == "openstax-yesno" else "unanswerable")
        else:
            assert item.answers and row["evidence"] and row["source"].endswith(".md")
            assert row["kind"] != "yes/no" or item.answers[0] in ("yes", "no")
