"""The command line with ordinary mistakes and environment faults: one clear line, a non-zero exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ragbook.cli import main, terminal_safe

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAGBOOK_PROGRESS": "0"}


def _run(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragbook", *args], input=stdin, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ragbook: error: ")
    return lines[0]


def test_index_of_a_missing_path_is_an_error(tmp_path):
    result = _run("index", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "ix"))
    assert result.returncode != 0
    line = _one_error_line(result.stderr)
    assert "nonexistent" in line and "does not exist" in line
    assert not (tmp_path / "ix").exists()


def test_eval_of_a_missing_target_is_an_error(tmp_path):
    questions = tmp_path / "q.csv"
    questions.write_text("question,source\nWhat?,a.md\n", encoding="utf-8")
    result = _run("eval", str(tmp_path / "nonexistent"), str(questions))
    assert result.returncode != 0
    assert "nonexistent" in _one_error_line(result.stderr)
    result = _run("eval", str(tmp_path), str(tmp_path / "missing.csv"))
    assert result.returncode != 0 and "missing.csv" in _one_error_line(result.stderr)


def test_out_below_a_file_is_one_line(notes_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    code = main(["--no-progress", "index", str(notes_dir), "--out", str(blocker / "ix")])
    err = capsys.readouterr().err
    assert code == 2
    line = _one_error_line(err)
    assert "a-file" in line


def test_verbose_shows_the_traceback(tmp_path, capsys):
    assert main(["-v", "search", str(tmp_path / "no-index"), "q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ragbook: error:" in err
    assert main(["search", str(tmp_path / "no-index"), "q", "-v"]) == 2  # after the command too
    assert "Traceback" in capsys.readouterr().err


def test_a_damaged_manifest_is_one_line(notes_dir, tmp_path, capsys):
    out = tmp_path / "ix"
    assert main(["--no-progress", "index", str(notes_dir), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    del manifest["embedding"]
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    capsys.readouterr()
    for command in (["search", str(out), "photosynthesis"], ["info", str(out)]):
        assert main(command) == 2, command
        assert "embedding" in _one_error_line(capsys.readouterr().err)  # the error names the missing key


def test_a_full_disk_during_save_says_so_and_keeps_the_old_index(notes_dir, tiny_disk, capsys):
    from ragbook.index import open_index

    disk = tiny_disk("2m")
    out = disk / "ix"
    assert main(["--no-progress", "index", str(notes_dir), "--out", str(out)]) == 0
    before = open_index(out).search("Calvin cycle", k=1)[0].chunk.text
    # fill the disk, then add a file: the new generation cannot be written
    (notes_dir / "notes/more.md").write_text("# More\n\n" + "Glaciers carve valleys. " * 2000, encoding="utf-8")
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    capsys.readouterr()
    code = main(["--no-progress", "index", str(notes_dir), "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "disk is full" in line
    index = open_index(out)  # the previous index is whole
    assert index.search("Calvin cycle", k=1)[0].chunk.text == before
    assert not any(p.name.startswith(".tmp") for p in out.iterdir())


def test_terminal_output_escapes_control_characters(tmp_path, capsys):
    assert terminal_safe("ok\n\tline\x1b]52;c;ZXZpbA==\x07 \x9b31m \u202egnp.exe") == (
        "ok\n\tline\\u001b]52;c;ZXZpbA==\\u0007 \\u009b31m \\u202egnp.exe")
    folder = tmp_path / "docs"
    folder.mkdir()
    filler = "Revise the chapters on cells and genetics before it. " * 8  # a few control bytes in real text
    (folder / "evil.md").write_text(f"# Title\n\nThe exam is on Monday.\x1b]0;owned\x07 Bring a pencil. {filler}\n",
                                    encoding="utf-8")
    assert main(["--no-progress", "index", str(folder), "--out", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "ix"), "exam Monday", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\x1b]0;owned\x07" in json.loads(out)[0]["text"]  # the JSON still carries the real text
    assert main(["search", str(tmp_path / "ix"), "exam Monday"]) == 0
    assert "\x1b" not in capsys.readouterr().out


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chat_reports_a_backend_error_and_carries_on(notes_dir, tmp_path, embedder):
    import ragbook
    from ragbook.assistant import Assistant

    index = ragbook.build(notes_dir, embedding_model=embedder)
    bundle = Assistant(index, name="Course", llm="extractive").save(tmp_path / "course.ragbook")
    url = f"openai:http://127.0.0.1:{_dead_port()}/v1#m"
    result = _run("chat", str(bundle), "--llm", url, stdin="Where is the Calvin cycle?\nAnd volcanoes?\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.count("ragbook: ") >= 2  # both questions answered with the error, then /quit
    assert "ask again" in result.stdout


def test_ask_flags_an_answer_the_server_cut_short(notes_dir, tmp_path, embedder, capsys):
    from test_llm_hostile_server import STOP, start

    import ragbook
    from ragbook.assistant import Assistant

    index = ragbook.build(notes_dir, embedding_model=embedder)
    bundle = Assistant(index, name="Course", llm="extractive").save(tmp_path / "course.ragbook")
    STOP.clear()
    server = start()
    try:
        url = f"openai:http://127.0.0.1:{server.server_address[1]}/cut/v1#m"
        assert main(["ask", str(bundle), "Where is the Calvin cycle?", "--llm", url]) == 0
        out = capsys.readouterr().out
        assert "! incomplete:" in out
        assert main(["ask", str(bundle), "Where is the Calvin cycle?", "--llm", url, "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["incomplete"] is True and answer["incomplete_reason"]
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()


def test_a_shared_file_reaches_its_server_only_with_trust_llm(notes_dir, tmp_path, embedder, capsys, monkeypatch):
    from test_llm_hostile_server import STOP, start

    import ragbook
    from ragbook.assistant import Assistant

    STOP.clear()
    server = start()
    try:
        url = f"openai:http://127.0.0.1:{server.server_address[1]}/ok/v1#m"
        index = ragbook.build(notes_dir, embedding_model=embedder)
        bundle = Assistant(index, name="Course", llm=url).save(tmp_path / "course.ragbook")
        server.seen.clear()
        monkeypatch.setenv("RAGBOOK_LLM", "extractive")  # this machine's choice, when the file is not trusted
        monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-reader")
        assert main(["ask", str(bundle), "Where is the Calvin cycle?", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert server.seen == [] and answer["mode"] == "extractive"
        assert main(["ask", str(bundle), "Where is the Calvin cycle?", "--json", "--trust-llm"]) == 0
        answer = json.loads(capsys.readouterr().out)
        # the server's reply ("Hello") is shown, or withheld as no passage backs it: either way it was read
        assert server.seen and answer["mode"] == "llm" and "Hello" in answer["text"] + answer["withheld"]
        assert all(auth is None or "sk-secret" not in auth for _, auth in server.seen)
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()


def test_build_of_a_missing_path_is_an_error_but_a_deleted_root_is_dropped(notes_dir, tmp_path):
    import shutil

    from fakes import HashEmbedder

    import ragbook

    with pytest.raises(ragbook.NotFoundError, match="nonexistent"):
        ragbook.build(tmp_path / "nonexistent", embedding_model=HashEmbedder())
    with pytest.raises(FileNotFoundError):  # NotFoundError is a FileNotFoundError too
        ragbook.build([notes_dir, tmp_path / "nonexistent"], out=tmp_path / "ix", embedding_model=HashEmbedder())
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "a.md").write_text("# A\n\nAlpha text.", encoding="utf-8")
    index = ragbook.build([notes_dir, extra], out=tmp_path / "ix", embedding_model=HashEmbedder())
    assert "extra/a.md" in index.sources
    shutil.rmtree(extra)
    index = ragbook.build([notes_dir, extra], out=tmp_path / "ix", embedding_model=HashEmbedder())  # indexed before: dropped
    assert "extra/a.md" not in index.sources and index.last_report.removed == ["extra/a.md"]
