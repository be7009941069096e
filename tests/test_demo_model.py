"""The README's first command, ``ragbook demo``, with the default model: a correct, cited answer.

These run the real Qwen2.5-Coder-1.5B-Instruct (the ``models`` extra, which the ``test`` extra
installs) on the demo corpus, greedy, so each answer is the same on every run: ~10-40 s an
answer on two idle cores, a few minutes on a busy machine.  Expected facts come from the gold
questions in ``corpora/.questions.json``.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import REPO

from ragbook.llm import presets

DEFAULT = "qwen2.5-coder-1.5b"
GOLD = {q["question"]: q for q in json.loads((REPO / "corpora" / ".questions.json").read_text(encoding="utf-8"))}
_MARK = re.compile(r"\[(\d+)\]")

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install -e '.[llama]'")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not presets.is_installed(presets.PRESETS[DEFAULT]),
                       reason=f"the default model {DEFAULT} is not installed: pip install -e '.[models]' "
                              f"({presets.PRESETS[DEFAULT].install_command()})"),
]


def _skip_unless_it_fits() -> None:
    free_mb = presets.available_memory() // presets.MB
    if free_mb < presets.PRESETS[DEFAULT].ram_mb:
        pytest.skip(f"{DEFAULT} needs ~{presets.PRESETS[DEFAULT].ram_mb} MB; {free_mb} MB are free")


def _cited(text: str) -> set[int]:
    return {int(n) for n in _MARK.findall(text)}


def test_readme_demo_answers_correctly_and_cites_the_handbook_page(tmp_path, monkeypatch, capsys):
    from ragbook.cli import DEMO_QUESTION, main

    _skip_unless_it_fits()
    monkeypatch.delenv("RAGBOOK_LLM", raising=False)  # the machine's default, as the README promises
    # `.venv/bin/ragbook demo` in a checkout: corpora/ in the working folder, index and saved
    # assistant written beside it (here a temporary copy, so the checkout stays clean).
    shutil.copytree(REPO / "corpora", tmp_path / "corpora")
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"Q: {DEMO_QUESTION}" in out and f"({DEFAULT}, llm;" in out
    assert (tmp_path / "data101.ragbook").is_file()

    # The answer as printed (after ragbook's checks), before ragbook's own lines (indented, after a blank line).
    raw = out.split("\nA: ", 1)[1].split("\n\n  ", 1)[0]
    assert not raw.startswith("I don't know"), raw  # the checks must not withhold the demo's right answer
    refs = dict(re.findall(r"^  \[(\d+)\] (.+)$", out, flags=re.M))
    page = [int(n) for n, where in refs.items() if where.startswith("corpora/handbook.pdf, page 4")]
    assert re.search(r"\b(6|six)\b", raw, flags=re.I), raw  # "at most 6 times"
    assert page, f"no citation of corpora/handbook.pdf, page 4 in:\n{out}"
    assert "! invalid citation" not in out


@pytest.fixture(scope="module")
def demo_bot(tmp_path_factory):
    from ragbook.assistant import Assistant
    from ragbook.index import build

    _skip_unless_it_fits()
    index = build(REPO / "corpora", out=tmp_path_factory.mktemp("demo") / "index")
    return Assistant(index, llm=DEFAULT, template="tutor")


@pytest.mark.parametrize("question, fact", [
    ("How many grace days do students get over the whole term?", r"\b(four|4)\b"),
    ("What time is the final project due, and can I use grace days on it?", r"\b17[:.]00\b"),
])
def test_gold_questions_are_answered_from_the_right_source(demo_bot, question, fact):
    gold = GOLD[question]
    answer = demo_bot.ask(question)
    assert answer.mode == "llm" and answer.llm == DEFAULT
    assert re.search(fact, answer.text, flags=re.I), answer.text
    assert not answer.invalid_citations
    # the citations of the answer (the model's own, or added where a sentence matches a passage)
    cited = [answer.passages[n - 1] for n in _cited(answer.text) if 1 <= n <= len(answer.passages)]
    assert cited, f"the answer cites nothing: {answer.text!r}"
    assert any(h.source == gold["source"] and h.page == gold["page"] for h in cited), (
        f"the answer's citations {[h.citation() for h in cited]} miss {gold['source']}")


def test_quote_then_answer_with_the_model_as_its_own_verifier(demo_bot, tmp_path, monkeypatch, capsys):
    """The quote template on the command line: the model quotes the syllabus, ragbook finds the quote in its
    passage and the model's one-word checks run (or not, with --no-verify)."""
    from ragbook.cli import main

    monkeypatch.delenv("RAGBOOK_LLM", raising=False)
    saved = demo_bot.save(tmp_path / "demo.ragbook")
    question = "How many grace days do students get over the whole term?"
    assert main(["ask", saved, question, "--template", "quote", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    grounding = answer["grounding"]
    assert grounding["n"] and grounding["quote"] and re.search(r"\b(four|4)\b", answer["text"], re.I), answer
    quoted = answer["passages"][grounding["n"] - 1]["text"]
    assert quoted[grounding["start"]:grounding["end"]] == grounding["quote"]  # found in its passage, verbatim
    assert answer["model_checks"] >= 1 and not answer["withheld"]

    assert main(["ask", saved, question, "--template", "quote", "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "the model quoted [" in out and not out.startswith("Quote"), out  # the quote is shown, checked, apart
