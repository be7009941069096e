"""ragbook.testing: the stand-ins users test their own code with go through ragbook's real code paths."""

from __future__ import annotations

import numpy as np
import pytest

from ragbook.assistant import Assistant
from ragbook.documents import Chunk
from ragbook.errors import LLMError
from ragbook.index import Index
from ragbook.llm.base import LLM, Generation
from ragbook.testing import FakeLLM, HashEmbedder


@pytest.fixture()
def course(notes_dir):
    index = Index(HashEmbedder())
    index.add(notes_dir)
    return index


def test_hash_embedder_is_deterministic_and_normalised():
    emb = HashEmbedder(16)
    a, b = emb.encode_documents(["the stroma of the chloroplast", "the stroma of the chloroplast"])
    assert np.array_equal(a, b) and np.isclose(np.linalg.norm(a), 1.0) and a.dtype == np.float32
    assert emb.encode_documents([]).shape == (0, 16) and emb.encode_queries("x").shape == (1, 16)
    assert emb.calls == 2 and emb.embedded == 2 and emb.info()["dimension"] == 16


def test_fake_llm_is_a_real_llm_behind_an_assistant(course):
    llm = FakeLLM()
    assert isinstance(llm, LLM)
    answer = Assistant(course, llm=llm, verify=False).ask("Where does the Calvin cycle run?")
    assert answer.citations and answer.citations[0].valid and answer.text.endswith("[1]")
    assert isinstance(llm.last_generation, Generation) and llm.last_generation.finish_reason == "stop"
    assert llm.calls and llm.calls[0][-1]["role"] == "user" and "Calvin cycle" in llm.calls[0][-1]["content"]
    assert "fake" in repr(llm) and "<" in llm._repr_html_()


def test_fake_llm_keeps_the_real_limits():
    llm = FakeLLM("one two three four five")
    assert "".join(llm.stream("hi", max_tokens=3)) == "one two three"
    assert llm.last_generation.finish_reason == "length"
    assert llm.chat("hi", stop=None).text == "one two three four five"
    with pytest.raises(LLMError, match="reads at most"):
        FakeLLM("ok", context_window=4).chat("a question far longer than four words")


def test_a_scripted_reply_can_depend_on_the_messages(course):
    llm = FakeLLM(lambda messages: "Yes" if "one word" in messages[-1]["content"]
                  else "The Calvin cycle runs in the stroma [1].")
    bot = Assistant(course, llm=llm)
    bot.ask("Where does the Calvin cycle run?")
    assert len(llm.calls) >= 2  # the answer, then ragbook's one-word checks, all through the same model


def test_anything_with_the_model_protocols_plugs_in(notes_dir):
    from ragbook.embedding import EmbeddingModel
    from ragbook.errors import SettingsError
    from ragbook.llm.base import ChatModel

    assert isinstance(HashEmbedder(), EmbeddingModel) and isinstance(FakeLLM(), ChatModel)
    assert not isinstance(object(), ChatModel) and not isinstance("model", EmbeddingModel)
    with pytest.raises(SettingsError, match="EmbeddingModel"):
        Index(object())
    index = Index(HashEmbedder())
    index.add(notes_dir)
    bot = Assistant(index, llm=FakeLLM())
    assert bot.llm_name == "fake" and bot.llm is bot._llm  # a ChatModel object is used as it is, never loaded


def test_fake_llm_answers_with_its_passages_first_sentence_past_headings():
    from ragbook.prompt import format_passages

    def ask(*texts):
        passages = [Chunk(text=t, source=f"p{n}.md") for n, t in enumerate(texts, start=1)]
        return FakeLLM().answer([{"role": "user", "content": format_passages(passages) + "\n\nQuestion: ?"}])

    assert ask("## Calvin cycle\nThe Calvin cycle fixes carbon. It runs in the stroma.") == "The Calvin cycle fixes carbon. [1]"
    assert ask("# Only a heading", "Second passage body.") == "I don't know."  # never another passage's words
