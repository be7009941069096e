"""Test doubles for code built on ragbook: a fast embedder and a scripted language model.

Tests of a course assistant's own code (its question files, its notebook, a tool built around
``Assistant``) should not wait for a real embedding model or language model.  These stand-ins
run in microseconds and are deterministic:

>>> from ragbook.testing import FakeLLM, HashEmbedder
>>> index = ragbook.Index(HashEmbedder())
>>> index.add("notes/")
>>> bot = ragbook.Assistant(index, llm=FakeLLM())
>>> bot.ask("Where does the Calvin cycle run?").citations

``FakeLLM`` is a real :class:`ragbook.llm.base.LLM`: ``chat``, ``stream``, stop strings,
deadlines, ``last_generation`` and the display all go through the same code as llama.cpp's or a
server's answers; only the words are scripted.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any, Callable, Generator, Sequence

import numpy as np

from ragbook.llm.base import LLM, Params, Usage, normalize_messages

__all__ = ["HashEmbedder", "FakeLLM"]


class HashEmbedder:
    """Vectors from a hash of the words: equal texts get equal vectors, texts sharing words are similar.

    Good for tests of storage, bookkeeping and plumbing; search quality needs the real model.
    """

    name = "test/hash-embedder"
    normalize = True

    def __init__(self, dimension: int = 32, *, delay: float = 0.0) -> None:
        self.dimension = dimension
        self.delay = delay  # seconds a text: a slow model, for tests that stop a build midway
        self.tokenizer = None  # chunking counts words
        self.max_tokens = 10_000
        self.calls = 0  # how many times documents were embedded, and how many texts in all
        self.embedded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.dimension] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        if self.delay:
            time.sleep(self.delay * len(texts))
        return np.stack([self._vec(t) for t in texts]) if len(texts) else np.zeros((0, self.dimension), np.float32)

    def encode_queries(self, texts: Sequence[str] | str) -> np.ndarray:
        return np.stack([self._vec(t) for t in ([texts] if isinstance(texts, str) else texts)])

    def fingerprint(self) -> list[float]:
        return [round(float(x), 4) for x in self._vec("ragbook fingerprint")[:8]]

    def info(self) -> dict[str, Any]:
        return {"model": self.name, "dimension": self.dimension, "normalize": True,
                "max_seq_length": self.max_tokens, "fingerprint": self.fingerprint()}


class FakeLLM(LLM):
    """A language model whose answers are scripted.

    ``reply``: the answer to every question, or a function of the messages that returns it.
    With none, it answers with the first sentence of the passage marked ``[cite]`` in the
    prompt (past its headings), cited, as a model that follows the instructions would; ``"I don't know."`` when
    there is no such passage.  Every call's messages are kept in ``calls``.  Tokens are words.
    """

    backend = "fake"

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] | None = None, *, cite: int = 1,
                 context_window: int = 4096, name: str = "fake") -> None:
        self.reply = reply
        self.cite = cite
        self.context_window = context_window
        self.name = name
        self.calls: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def render(self, messages: str | Sequence[dict[str, Any]]) -> str:
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in normalize_messages(messages))

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.name}

    def answer(self, messages: list[dict[str, str]]) -> str:
        if callable(self.reply):
            return self.reply(messages)
        if self.reply is not None:
            return self.reply
        question = messages[-1]["content"]
        marker = f"[{self.cite}] "
        if marker not in question:
            return "I don't know."
        quoted = []  # the passage's lines, each quoted with "> ", up to the next passage
        for line in question.split(marker, 1)[1].split("\n")[1:]:
            if not line.startswith(">"):
                break
            quoted.append(line.removeprefix(">").strip())
        passage = next((line for line in quoted if line and not line.startswith("#")), "")
        if not passage:
            return "I don't know."
        return passage.split(". ")[0].rstrip(".") + f". [{self.cite}]"  # its first sentence, past any heading

    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Generator[str, None, Usage]:
        self.calls.append(messages)
        words = self.answer(messages).split(" ")
        prompt_tokens = self.count_tokens(self.render(messages))
        room = self._check_fits(prompt_tokens, params)
        for n, word in enumerate(words[:room]):
            yield word if n == 0 else " " + word
        return Usage(prompt_tokens, min(len(words), room), "length" if len(words) > room else "stop")
