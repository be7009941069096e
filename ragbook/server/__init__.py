"""Serve one assistant to a whole class: ``ragbook serve course.ragbook``.

One process holds the index and the language model; students use a plain web page, their own
notebooks (``ragbook.connect``), or any OpenAI-compatible client.  Routes:

=============================  ===========================================================
``GET /``                      the student page: a web chat with streamed, cited answers
``GET /api/info``              the assistant: name, model, documents, limits
``POST /api/ask``              ``{"question", "history"?, "k"?, "mode"?, "stream"?}``: the
                               checked answer as JSON, or server-sent events (``queue``,
                               ``stage``, ``token``, then ``answer`` or ``error``)
``POST /api/search``           ``{"query", "k"?, "mode"?}``: the passages, with their scores
``GET /api/health``            up, and how many questions wait and run (no token needed)
``GET /v1/models``             OpenAI-compatible: the assistant as one model
``POST /v1/chat/completions``  OpenAI-compatible, streamed or not: the answer, then its sources
``GET /stats``, ``/api/stats`` for the teacher (the admin token): questions per hour,
                               abstentions, answer times, what the documents could not answer
=============================  ===========================================================

Every call but the page and the health check needs ``Authorization: Bearer <class token>``
unless the server was started with ``--open``.  Errors are JSON
``{"error": {"message", "type", "status"}}``; 429 and 503 carry ``Retry-After``.
Needs ``pip install "ragbook[serve]"`` (Starlette and uvicorn).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ragbook.errors import MissingDependencyError

__all__ = ["serve", "create_app", "load_for_serving", "ServerConfig"]

log = logging.getLogger(__name__)


def need_web_stack() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"ragbook serve needs Starlette and uvicorn ({exc.name} is missing): "
                                     "pip install \"ragbook[serve]\"") from None


def __getattr__(name: str) -> Any:
    if name == "ServerConfig":
        from ragbook.server.app import ServerConfig

        return ServerConfig
    raise AttributeError(f"module 'ragbook.server' has no attribute {name!r}")


def load_for_serving(target: Any, *, llm: Any = None, trust_llm: bool = False) -> Any:
    """The assistant to serve (a ``.ragbook`` path or an Assistant), its model loaded now rather than at the
    first question, with an answer deadline so a stuck model cannot hold the line."""
    from ragbook.assistant import Assistant, load_assistant

    if isinstance(target, Assistant):
        assistant = target
        if llm is not None:
            assistant.llm = llm
    else:
        assistant = load_assistant(Path(target).expanduser(), trust_llm=trust_llm, **({"llm": llm} if llm else {}))
    if not assistant.extractive:
        model = assistant.llm
        log.info("language model %s loaded", model.name)
    return assistant


def default_parallel(assistant: Any) -> int:
    """Answers at once: 8 for an OpenAI-compatible server (vLLM and llama.cpp's server batch them; the workers
    mostly wait on the network), else 1.  An in-process model writes one answer at a time, and extractive
    answers are Python work: more threads would only make the web side wait for the interpreter lock
    (benchmarks/serve.py measured 4 threads at 25x the overhead of 1)."""
    if assistant.extractive:
        return 1
    return 8 if getattr(assistant.llm, "backend", "") == "openai" else 1


def create_app(assistant: Any, **config: Any) -> Any:
    """The ASGI app serving ``assistant`` (``config``: :class:`ServerConfig`'s fields); run it with any ASGI server."""
    need_web_stack()
    from ragbook.server.app import RagbookServer, ServerConfig

    config.setdefault("parallel", default_parallel(assistant))
    return RagbookServer(assistant, ServerConfig(**config)).app


def serve(assistant: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **config: Any) -> None:
    """Run the server until interrupted (``ragbook serve`` calls this); binds to 127.0.0.1 unless told otherwise."""
    need_web_stack()
    import uvicorn

    from ragbook.llm.base import is_loopback

    if not is_loopback(host) and config.get("open_access"):
        log.warning("serving on %s with --open: anyone who can reach this machine can ask", host)
    app = create_app(assistant, **config)
    # no access log: the teacher's stats link carries its token in the query string
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5, timeout_graceful_shutdown=3,
                limit_concurrency=1000, server_header=False, proxy_headers=False, access_log=False)
