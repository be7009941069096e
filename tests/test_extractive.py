"""ragbook.extractive: extractive answers, and passages focused on the question for a model's prompt."""

from __future__ import annotations

import ragbook
from ragbook.documents import Chunk
from ragbook.extractive import focus
from ragbook.retrieval import Hit
from ragbook.testing import FakeLLM, HashEmbedder

LONG = ("The course has three labs. Each lab report is due one week after the lab session. "
        "Late lab reports lose ten percent per day. Photosynthesis happens in the chloroplast. "
        "The library opens at nine. Grace days can be used for homework but never for labs. "
        "The final exam is in the sports hall.")


def _hit(text: str, source: str = "notes.md") -> Hit:
    return Hit(chunk=Chunk(text=text, source=source, page=2), score=1.0, rank=1)


def words(text: str) -> int:
    return len(text.split())


def test_a_long_passage_keeps_its_sentences_closest_to_the_question_in_reading_order():
    (citation, text), = focus("When are late lab reports due and what do they lose?", [_hit(LONG)], HashEmbedder(),
                              budget=20, count_tokens=words)
    assert citation == "notes.md, page 2"
    assert "Late lab reports lose ten percent per day." in text and words(text) <= 20 + 2  # the gaps' marks
    assert "library" not in text and "sports hall" not in text
    kept = [s for s in LONG.split(". ") if s.rstrip(".") in text]
    assert text.index(kept[0]) < text.index(kept[-1])  # in the passage's order
    assert "\u2026" in text  # what was left out is marked


def test_a_passage_that_fits_is_kept_whole_and_a_huge_best_sentence_is_kept_anyway():
    short = "Office hours are on Tuesdays."
    assert focus("office hours?", [_hit(short)], HashEmbedder(), budget=50, count_tokens=words) == [
        ("notes.md, page 2", short)]
    one = "word " * 80 + "office hours are on Tuesdays in room 204."
    (_, text), = focus("office hours?", [_hit(one + " Unrelated sentence here.")], HashEmbedder(), budget=10,
                       count_tokens=words)
    assert "office hours are on Tuesdays" in text and "Unrelated" not in text


def test_an_assistant_with_passage_tokens_reads_the_best_passage_whole_and_the_others_focused(notes_dir):
    index = ragbook.build(notes_dir, embedding_model=HashEmbedder(), chunk_size=200, overlap=0)
    llm = FakeLLM()
    whole = ragbook.Assistant(index, llm=llm, min_relevance=None).ask("Where does the Calvin cycle run?")
    focused_bot = ragbook.Assistant(index, llm=llm, min_relevance=None, passage_tokens=16)
    focused = focused_bot.ask("Where does the Calvin cycle run?")
    assert focused.tokens["prompt"] < whole.tokens["prompt"]
    assert "\u2026" in focused.prompt and "\u2026" not in whole.prompt
    best = focused.passages[0].chunk.text.split("\n")
    assert all(line.strip() in focused.prompt for line in best if line.strip())  # the best passage is read whole
    assert [h.chunk.id for h in focused.passages] == [h.chunk.id for h in whole.passages]  # citations: the real hits
    assert focused.citations and focused.citations[0].hit is focused.passages[0]
    assert focused_bot.config.passage_tokens == 16 and focused_bot.settings()["passage_tokens"] == 16
