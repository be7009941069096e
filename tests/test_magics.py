"""%load_ext ragbook, %ragbook use, %%ask: in a real IPython shell."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from fakes import EchoLLM  # noqa: E402


@pytest.fixture()
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ragbook")
    yield ip
    ip.run_line_magic("unload_ext", "ragbook") if "ragbook" in ip.extension_manager.loaded else None
    InteractiveShell.clear_instance()


@pytest.fixture()
def bot(make_index, notes_dir):
    from ragbook.assistant import Assistant

    index = make_index(chunk_size=64, overlap=8)
    index.add(notes_dir)
    return Assistant(index, name="geo", llm=EchoLLM(), k=3)


def test_use_a_variable_then_ask_in_a_cell(shell, bot):
    from ragbook.magics import MagicError

    with pytest.raises(MagicError, match="no assistant in use"):
        shell.run_line_magic("ragbook", "")
    shell.user_ns["bot"] = bot
    assert shell.run_line_magic("ragbook", "use bot") is bot
    assert shell.run_line_magic("ragbook", "") is bot
    answer = shell.run_cell_magic("ask", "", "Where does the Calvin cycle run?\n")
    assert answer.question == "Where does the Calvin cycle run?"
    assert answer.citations and "photosynthesis.md" in answer.citations[0].source
    one_line = shell.run_line_magic("ask", "What is the deadliest volcanic hazard?")
    assert "volcanoes.md" in one_line.citations[0].source


def test_ask_options_change_only_that_answer(shell, bot):
    shell.user_ns["bot"] = bot
    shell.run_line_magic("ragbook", "use bot")
    answer = shell.run_cell_magic("ask", "-k 1 --mode bm25 --prompt", "Office hours?")
    assert len(answer.passages) == 1 and answer.passages[0].dense_score is None
    assert bot.retriever.k == 3 and bot.retriever.mode == "hybrid"


def test_use_a_saved_file_with_another_model(shell, bot, tmp_path):
    path = tmp_path / "geo.ragbook"
    bot.save(path)
    loaded = shell.run_line_magic("ragbook", f"use {path} --model extractive")
    assert loaded.extractive and len(loaded.index) == len(bot.index)
    answer = shell.run_cell_magic("ask", "", "What are shield volcanoes built by?")
    assert answer.mode == "extractive" and "basalt" in answer.text


def test_magic_mistakes_say_what_to_do(shell, tmp_path):
    from ragbook.magics import MagicError

    with pytest.raises(MagicError, match="neither a file nor an assistant"):
        shell.run_line_magic("ragbook", f"use {tmp_path / 'missing.ragbook'}")
    with pytest.raises(MagicError, match="pick an assistant first"):
        shell.run_cell_magic("ask", "", "anything")
    with pytest.raises(MagicError, match="unknown %ragbook command"):
        shell.run_line_magic("ragbook", "frobnicate")
    with pytest.raises(MagicError, match="--model needs a name"):
        shell.run_line_magic("ragbook", "use x --model")
    assert "qwen2.5-coder-1.5b" in str(shell.run_line_magic("ragbook", "models"))



def test_use_a_shared_file_trusts_its_model_only_when_asked(shell, make_index, notes_dir, tmp_path, monkeypatch):
    import json
    import zipfile

    from ragbook.assistant import Assistant

    index = make_index(chunk_size=64, overlap=8)
    index.add(notes_dir)
    saved = Assistant(index, name="geo", llm="extractive", k=3).save(tmp_path / "geo.ragbook")
    # the author's file names a model file outside it (rewritten here as a stranger could)
    outside = tmp_path / "their-model.gguf"
    outside.write_bytes(b"GGUF" + b"\0" * 64)
    shared = tmp_path / "shared.ragbook"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(shared, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "assistant.json":
                data = json.dumps({**json.loads(data), "llm": str(outside)}).encode()
            dst.writestr(info, data)
    monkeypatch.setenv("RAGBOOK_LLM", "extractive")
    bot = shell.run_line_magic("ragbook", f"use {shared}")
    assert bot.extractive and bot.model_name == "extractive"  # this machine's choice
    assert "their-model.gguf" in str(bot.suggested_llm) and "trust_llm" in bot.notes["llm"]
    trusted = shell.run_line_magic("ragbook", f"use {shared} --trust-llm")
    assert not trusted.extractive and trusted.model_name == str(outside) and trusted.suggested_llm is None
