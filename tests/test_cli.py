from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ragbook.cli import main


@pytest.fixture()
def built(notes_dir, tmp_path, capsys):
    out = tmp_path / "ix"
    (notes_dir / "notes/draft.tmp.md").write_text("# Draft\n\nnot for the index", encoding="utf-8")
    (notes_dir / ".hidden").mkdir()
    (notes_dir / ".hidden/secret.md").write_text("# Secret\n\nhidden notes", encoding="utf-8")
    code = main(["--no-progress", "index", str(notes_dir), "--out", str(out), "--exclude", "*.tmp.md",
                 "--chunk-size", "100", "--overlap", "10", "--index-type", "flat"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 added" in printed and "Indexed into" in printed
    return out


def test_index_search_info(built, capsys):
    assert main(["search", str(built), "Where does the Calvin cycle happen?", "-k", "2", "--explain"]) == 0
    out = capsys.readouterr().out
    header, first = out.splitlines()[:2]
    assert header.split() == ["#", "score", "source", "page", "passage"]
    assert "photosynthesis.md" in first and "dense" in out and "bm25" in out

    assert main(["search", str(built), "volcano hazards", "--json", "--mode", "dense", "--min-score", "0.1"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["source"].endswith("volcanoes.md") and hits[0]["bm25_score"] is None

    assert main(["search", str(built), "grade", "--mode", "bm25", "--filter", "source=*.txt", "--mmr", "0.5",
                 "--fusion", "weighted", "--weight", "0.3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert {h["source"] for h in hits} == {"course/notes/syllabus.txt"}

    assert main(["info", str(built), "--files"]) == 0
    info = capsys.readouterr().out
    assert "all-MiniLM-L6-v2" in info and "100 tokens, overlap 10" in info and "3 files" in info
    assert "draft" not in info and "secret" not in info
    assert main(["info", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunking"]["chunk_size"] == 100


def test_update_hidden_and_strict(built, notes_dir, capsys):
    (notes_dir / "notes/bad.txt").write_bytes(b"\x00" * 64)
    code = main(["index", str(notes_dir), "--out", str(built), "--hidden", "--strict", "--include", "*.md",
                 "--include", "*.txt"])
    out = capsys.readouterr().out
    assert code == 1 and "bad.txt" in out and "binary" in out
    assert "2 added" in out  # .hidden/secret.md and the no-longer-excluded draft; bad.txt skipped
    assert main(["search", str(built), "secret hidden notes", "--mode", "bm25", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source"].endswith(".hidden/secret.md")


def test_filters_parse_page_ranges(built, capsys):
    assert main(["search", str(built), "anything", "--filter", "page=2-4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # markdown and text have no pages
    with pytest.raises(SystemExit):
        main(["search", str(built), "x", "--filter", "page=two"])


def test_errors_are_one_line_messages(tmp_path, capsys):
    assert main(["search", str(tmp_path), "query"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragbook: error:") and "not a ragbook index" in err


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "ragbook", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("ragbook ")


@pytest.mark.slow
def test_demo_ask_and_chat_with_a_saved_assistant(tmp_path, capsys, monkeypatch):
    from conftest import REPO

    saved = tmp_path / "demo.ragbook"
    code = main(["--no-progress", "demo", "--extractive", "--corpus", str(REPO / "corpora"),
                 "--out", str(tmp_path / "ix"), "--save", str(saved)])
    out = capsys.readouterr().out
    assert code == 0 and saved.exists()
    assert "Q: How many times can I run a lab" in out
    assert "[1] corpora/handbook.pdf, page 4" in out and "6 times" in out  # the answer, cited to its page

    assert main(["ask", str(saved), "How many grace days do students get?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["mode"] == "extractive" and answer["citations"][0]["source"].endswith("00-syllabus.md")
    assert answer["evidence"] and answer["evidence"][0]["quote"]

    assert main(["ask", str(saved), "How many times can I send a lab to the autograder?", "--evidence"]) == 0
    out = capsys.readouterr().out
    quoted = out.split("evidence (each cited sentence", 1)[1]
    assert "[1] \u201c" in quoted and "6 times" in quoted and "of its words)" in quoted

    assert main(["ask", str(saved), "Who won the 1998 football world cup?"]) == 0
    assert "I don't know" in capsys.readouterr().out

    script = "What does the autograder do?\n/prompt\nand how many times can I use it?\n/reset\n/quit\n"
    proc = subprocess.run([sys.executable, "-m", "ragbook", "chat", str(saved)], input=script, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first, follow_up = proc.stdout.split("you> ")[1:4:2]
    assert "corpora/handbook.pdf, page" in first  # the autograder's pages (3: its cells, 4: its runs)
    # the follow-up is read with the question before it: "it" is the autograder, 6 runs, page 4
    assert "6 times" in follow_up and "handbook.pdf, page 4" in follow_up and "(conversation cleared)" in proc.stdout


def test_models_lists_presets(capsys):
    assert main(["llms"]) == 0
    out = capsys.readouterr().out
    assert main(["models"]) == 0 and capsys.readouterr().out == out  # its old name
    assert out.splitlines()[0].split()[:2] == ["name", "backend"]
    assert "smollm2-135m" in out and "qwen2.5-coder-1.5b" in out


@pytest.mark.slow
def test_ask_with_a_real_small_model(tmp_path, capsys):
    from conftest import NOTES

    from ragbook.assistant import Assistant
    from ragbook.index import Index

    pytest.importorskip("llama_cpp")
    for rel, text in NOTES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    index = Index()
    index.add(tmp_path / "notes")
    saved = Assistant(index, llm="extractive").save(tmp_path / "bio.ragbook")
    code = main(["ask", saved, "Where does the Calvin cycle run?", "--llm", "smollm2-135m", "--show-prompt",
                 "-k", "2", "--template", "strict"])
    out = capsys.readouterr().out
    assert code == 0 and "--- prompt ---" in out and "[1] notes/photosynthesis.md" in out
    assert "smollm2" in out.lower() and "Answer ONLY with facts" in out  # the strict template was used


class _UncitingModel:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 whose model answers correctly but cites nothing."""

    ANSWER = ["The Calvin cycle ", "runs in the stroma."]

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        answer = self.ANSWER

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._json({"data": [{"id": "unciting"}]})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not request.get("stream"):  # ragbook's one-word checks
                    return self._json({"choices": [{"message": {"content": "Yes"}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in answer:
                    self.wfile.write(b"data: " + json.dumps({"choices": [{"delta": {"content": piece}}]}).encode() + b"\n\n")
                self.wfile.write(b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_ask_prints_one_answer_and_says_what_ragbook_cited(built, capsys, tmp_path):
    from ragbook.assistant import Assistant
    from ragbook.index import open_index

    saved = Assistant(open_index(built), llm="extractive").save(tmp_path / "bio.ragbook")
    model = _UncitingModel()
    try:
        code = main(["ask", saved, "Where does the Calvin cycle run?", "--llm", f"openai:{model.url}"])
    finally:
        model.close()
    out = capsys.readouterr().out
    assert code == 0 and out.count("runs in the stroma") == 1, out  # the corrected answer only, not the model's too
    first = out.splitlines()[0]
    assert first.startswith("The Calvin cycle runs in the stroma.") and "[1]" in first
    assert "ragbook cited 1 sentence the model left uncited" in out and "notes/photosynthesis.md" in out


def test_index_takes_vector_tuning(notes_dir, tmp_path, capsys):
    from ragbook.index import open_index

    out = tmp_path / "hnsw"
    assert main(["--no-progress", "index", str(notes_dir), "--out", str(out), "--index-type", "hnsw",
                 "--vector", "ef_search=200", "--vector", "hnsw_m=16"]) == 0
    config = open_index(out).config
    assert (config.index_type, config.ef_search, config.hnsw_m) == ("hnsw", 200, 16)
    with pytest.raises(SystemExit, match="--vector expects KEY=N"):
        main(["index", str(notes_dir), "--out", str(tmp_path / "x"), "--vector", "efsearch=2"])


def test_a_terminal_sees_what_happens_then_the_words_as_they_come(built, capsys, monkeypatch):
    import io

    from fakes import EchoLLM

    import ragbook
    from ragbook.cli import _print_answer

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bot = ragbook.Assistant(ragbook.open_index(built), llm=EchoLLM(), verify=False)
    _print_answer(None, bot.stream("Where does the Calvin cycle happen?"))
    live = term.getvalue()
    searching, reading = live.index("searching the documents"), live.index("echo is reading")
    words = live.index("\u2026 ", reading)  # the live preview of the model's words, after it has read
    assert searching < reading < words < live.index("checking the answer") and live.endswith("\r\x1b[K")
    assert "[1]" in capsys.readouterr().out  # the checked answer itself goes to stdout
