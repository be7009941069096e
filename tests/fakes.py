"""A fast stand-in for the embedding model, for tests about storage and bookkeeping.

Vectors are derived from a hash of the words, so equal texts get equal vectors and texts that
share words are similar; tests of search quality use the real model instead.
"""

from __future__ import annotations

from ragbook.testing import FakeLLM, HashEmbedder

__all__ = ["EchoLLM", "HashEmbedder", "QuietHandler"]


class EchoLLM(FakeLLM):
    """ragbook.testing.FakeLLM as the tests know it: named "echo", a 2,048-word window."""

    backend = "test"

    def __init__(self, reply: str | None = None, cite: int = 1, context_window: int = 2048, name: str = "echo") -> None:
        super().__init__(reply, cite=cite, context_window=context_window, name=name)

    def info(self):
        return {"backend": "test", "model": self.name}

    def answer(self, messages):  # the tests' models script their words by overriding _answer
        return self._answer(messages)

    def _answer(self, messages):
        return FakeLLM.answer(self, messages)


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
