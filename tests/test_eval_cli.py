"""``ragbook eval``: an index, a saved assistant, a documents folder or a BEIR folder, with every flag."""

from __future__ import annotations

import json

import pytest

from ragbook.cli import main

QUESTIONS = ("question,source,answer,unanswerable\n"
             "Where does the Calvin cycle run?,photosynthesis.md,stroma,\n"
             "What share of the grade is the final exam?,syllabus.txt,45 percent,\n"
             "Which hazard of volcanoes is the deadliest?,volcanoes.md,pyroclastic flows,\n"
             "Who wrote the book on llamas?,nowhere.md,,\n"
             "What is the capital of Australia?,,,yes\n")


@pytest.fixture()
def setup(notes_dir, tmp_path, capsys):
    out = tmp_path / "ix"
    assert main(["--no-progress", "index", str(notes_dir), "--out", str(out)]) == 0
    questions = tmp_path / "questions.csv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    capsys.readouterr()
    return out, questions


def test_eval_an_index_with_k_mode_and_json(setup, tmp_path, capsys):
    index, questions = setup
    report = tmp_path / "figures.json"
    assert main(["eval", str(index), str(questions), "--k", "2", "--mode", "bm25", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Retrieval on questions.csv: 4 questions with a source, bm25, k=2" in out
    assert "hit@2 0.7500" in out and "missed q4" in out and "nowhere.md" in out
    figures = json.loads(report.read_text(encoding="utf-8"))
    assert figures["retrieval"]["summary"]["hit@2"] == 0.75 and figures["retrieval"]["settings"]["mode"] == "bm25"
    assert len(figures["retrieval"]["rows"]) == 4 and "answers" not in figures


def test_eval_answers_extractive_on_a_sample(setup, tmp_path, capsys):
    index, questions = setup
    report = tmp_path / "figures.json"
    assert main(["eval", str(index), str(questions), "--answers", "--extractive", "--limit", "3",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Answers (extractive): 3 questions" in out and "f1" in out
    figures = json.loads(report.read_text(encoding="utf-8"))
    assert figures["sample"] == 3 and figures["answers"]["summary"]["questions"] == 3
    again = tmp_path / "again.json"
    assert main(["eval", str(index), str(questions), "--answers", "--extractive", "--limit", "3",
                 "--json", str(again)]) == 0
    def untimed(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert untimed(json.loads(again.read_text(encoding="utf-8"))["answers"]["rows"]) == untimed(figures["answers"]["rows"])


def test_eval_grid(setup, tmp_path, capsys):
    index, questions = setup
    report = tmp_path / "grid.json"
    assert main(["eval", str(index), str(questions), "--grid", "mode=dense,bm25", "--grid", "k=1,3",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    table = out.split("Grid: 4 configurations\n", 1)[1].splitlines()
    assert table[0].split() == ["mode", "k", "hit", "recall", "mrr", "ndcg"] and len(table) >= 5
    rows = json.loads(report.read_text(encoding="utf-8"))["grid"]["rows"]
    assert [(r["mode"], r["k"]) for r in rows] == [("dense", 1), ("dense", 3), ("bm25", 1), ("bm25", 3)]
    with pytest.raises(SystemExit):
        main(["eval", str(index), str(questions), "--grid", "mode"])


def test_eval_a_saved_assistant_and_a_documents_folder(setup, notes_dir, tmp_path, capsys):
    from ragbook.assistant import Assistant
    from ragbook.index import Index

    index, questions = setup
    saved = Assistant(Index.load(index), llm="extractive", k=3).save(tmp_path / "bio.ragbook")
    assert main(["eval", saved, str(questions), "--answers"]) == 0  # the saved extractive mode, k=3
    out = capsys.readouterr().out
    assert "hybrid, k=3" in out and "Answers (extractive): 5 questions, 1 unanswerable" in out
    assert main(["eval", str(notes_dir), str(questions), "--mode", "dense"]) == 0
    assert "dense, k=3" in capsys.readouterr().out  # a folder is scored as a new assistant answers: 3 passages


def test_eval_a_beir_folder(tmp_path, capsys):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = {"volcano": "Shield volcanoes have gentle slopes of basalt lava.",
            "photo": "Plants turn light into chemical energy in the chloroplast.",
            "exam": "The final exam counts for 45 percent of the grade."}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                                 for d, t in docs.items()), encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "basalt lava slopes"}\n'
                                          '{"_id": "q2", "text": "final exam percent"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tvolcano\t1\nq2\texam\t1\n",
                                               encoding="utf-8")
    report = tmp_path / "beir.json"
    assert main(["eval", str(folder), "--k", "3", "--json", str(report)]) == 0
    assert "Retrieval: 2 queries, hybrid, k=3" in capsys.readouterr().out
    figures = json.loads(report.read_text(encoding="utf-8"))
    assert figures["retrieval"]["ndcg@3"] == 1.0 and figures["retrieval"]["queries"] == 2
    assert main(["eval", str(folder), "--answers", "--extractive"]) == 2  # no gold answers in a BEIR folder
    assert "no gold answers" in capsys.readouterr().err


def test_eval_errors_are_one_line(setup, tmp_path, capsys):
    index, questions = setup
    assert main(["eval", str(index)]) == 2
    assert "which questions?" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("question,page\nWhere?,four\n", encoding="utf-8")
    assert main(["eval", str(index), str(bad)]) == 2
    assert f"{bad}, line 2: page 'four'" in capsys.readouterr().err
    assert main(["eval", str(index), str(questions), "--answers", "--llm", str(tmp_path / "missing.gguf")]) == 2
    assert capsys.readouterr().err.startswith("ragbook: error:")
