"""A fast stand-in for the embedding model, for tests about storage and bookkeeping.

Vectors are derived from a hash of the words, so equal texts get equal vectors and texts that
share words are similar; tests of search quality use the real model instead.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    name = "test/hash-embedder"
    normalize = True

    def __init__(self, dimension: int = 32) -> None:
        self.dimension = dimension
        self.tokenizer = None
        self.max_tokens = 10_000
        self.calls = 0
        self.embedded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            h = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
            v[h % self.dimension] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_documents(self, texts, *, show_progress=None):
        self.calls += 1
        self.embedded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_queries(self, texts):
        texts = [texts] if isinstance(texts, str) else texts
        return np.stack([self._vec(t) for t in texts])

    def fingerprint(self):
        return [round(float(x), 4) for x in self._vec("ragbook fingerprint")[:8]]

    def info(self):
        return {"model": self.name, "dimension": self.dimension, "normalize": True,
                "max_seq_length": self.max_tokens, "fingerprint": self.fingerprint()}


class EchoLLM:
    """A deterministic stand-in for a language model, with the interface ragbook's LLMs have.

    It answers with the first sentence of the passage it is told to cite (``cite``), or with
    a scripted reply; tokens are whitespace-separated words.
    """

    backend = "test"

    def __init__(self, reply: str | None = None, cite: int = 1, context_window: int = 2048, name: str = "echo") -> None:
        self.reply = reply
        self.cite = cite
        self.context_window = context_window
        self.name = name
        self.calls: list[list[dict]] = []
        self.last_generation = None

    def render(self, messages):
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in messages)

    def count_tokens(self, text):
        return len(text.split())

    def _answer(self, messages):
        if self.reply is not None:
            return self.reply
        user = messages[-1]["content"]
        marker = f"[{self.cite}] "
        if marker not in user:
            return "I don't know."
        passage = user.split(marker, 1)[1].split("\n", 2)[1].removeprefix("> ")  # passages are quoted
        return passage.split(". ")[0].rstrip(".") + f". [{self.cite}]"

    def chat(self, messages, *, max_tokens=512, temperature=0.0, stop=None, seed=0):
        from types import SimpleNamespace

        self.calls.append(messages)
        text = self._answer(messages)
        self.last_generation = SimpleNamespace(text=text, prompt_tokens=self.count_tokens(self.render(messages)),
                                               completion_tokens=len(text.split()), first_token_s=0.0, total_s=0.0,
                                               model=self.name, finish_reason="stop")
        return self.last_generation

    def stream(self, messages, *, max_tokens=512, temperature=0.0, stop=None, seed=0):
        text = self.chat(messages).text
        for word in text.split(" "):
            yield word + " "

    def info(self):
        return {"backend": "test", "model": self.name}


class QuietHandler:
    """Mixin for the tests' real HTTP servers on 127.0.0.1: no request log, and one way to answer."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
