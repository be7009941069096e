"""The server's endpoints: each checks the token, the limits and the body, then hands the question to the line.

Answers are sent by :class:`JobResponse`, a small ASGI response that watches for the client
leaving while it waits, so a student who closes the tab stops the model working for them
(the job is taken out of line, or stopped at its next text piece).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ragbook.errors import RagbookError
from ragbook.server.jobs import Job
from ragbook.server.problems import PAGE_POLICY, HTTPProblem

if TYPE_CHECKING:
    from ragbook.server.app import RagbookServer

__all__ = ["Routes", "JobResponse"]

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _problem_payload(data: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """An ``error`` event as an HTTP status, JSON body and headers."""
    status = int(data.get("status") or 500)
    problem = HTTPProblem(status, str(data.get("message") or "the answer failed"), kind="answer_failed",
                          retry_after=data.get("retry_after"))
    return status, problem.payload(), problem.headers()


async def _start(send: Send, status: int, content_type: str, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", content_type.encode())] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _body(send: Send, chunk: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": more})


class JobResponse:
    """Sends a job's outcome with ``produce(send)`` while watching for the client to leave.

    On leaving, the job is discarded: out of line if it still waits, stopped if it runs.
    """

    def __init__(self, server: RagbookServer, job: Job, produce: Callable[[Send], Awaitable[None]]) -> None:
        self.server, self.job, self.produce = server, job, produce

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Send) -> None:
        import anyio

        try:
            async with anyio.create_task_group() as group:
                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                try:
                    await self.produce(send)
                except OSError:  # the client went while we wrote
                    pass
                group.cancel_scope.cancel()
        finally:
            self.server.line.discard(self.job)


class Routes:
    def __init__(self, server: RagbookServer) -> None:
        self.s = server

    @cached_property
    def _page(self) -> str:
        return resources.files("ragbook.server").joinpath("student.html").read_text(encoding="utf-8")

    @property
    def model_id(self) -> str:
        return str(self.s.assistant.name)

    # -- pages ---------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self._page, headers={"content-security-policy": PAGE_POLICY})

    async def stats_page(self, request: Request) -> Response:
        self.s._auth(request, admin=True)
        return HTMLResponse(self.s.stats.html(self.model_id),
                            headers={"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def stats_json(self, request: Request) -> Response:
        self.s._auth(request, admin=True)
        return JSONResponse(self.s.stats.summary())

    # -- the JSON API --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        up, _ = self.s.backend_state()
        return JSONResponse({"ok": True, "waiting": self.s.line.waiting, "running": self.s.line.running,
                             "served": self.s.line.served, "backend": "up" if up else "down"})

    async def info(self, request: Request) -> Response:
        self.s._auth(request)
        a = self.s.assistant
        r = a.retriever
        return JSONResponse({
            "name": a.name, "llm": self.s.llm_label(), "template": a.template.name,
            "extractive": bool(a.extractive), "chunks": len(a.index), "files": sorted(self.s.sources.values()),
            "k": r.k, "mode": r.mode, "open": self.s.config.open_access,
            "max_question_chars": self.s.config.max_question_chars, "no_answer": a.template.no_answer,
            "waiting": self.s.line.waiting, "parallel": self.s.line.parallel,
        })

    async def ask(self, request: Request) -> Response | JobResponse:
        label = self.s._auth(request)
        self.s._limit(label)
        data = await self.s._body(request)
        question = self.s._question(data.get("question"))
        history = self.s._history(data.get("history"))
        options = self.s._options(data)
        streaming = bool(data.get("stream")) or "text/event-stream" in request.headers.get("accept", "")
        job = self.s._submit(question, history, options, label)
        return JobResponse(self.s, job, self._event_stream(job) if streaming else self._whole_answer(job))

    def _event_stream(self, job: Job) -> Callable[[Send], Awaitable[None]]:
        async def produce(send: Send) -> None:
            await _start(send, 200, "text/event-stream; charset=utf-8", {"x-accel-buffering": "no"})
            async for kind, data in self.s.events(job):
                await _body(send, b": keep-alive\n\n" if not kind else f"event: {kind}\ndata: ".encode() + _json_bytes(data)
                            + b"\n\n")
            await _body(send, b"", more=False)

        return produce

    def _whole_answer(self, job: Job) -> Callable[[Send], Awaitable[None]]:
        async def produce(send: Send) -> None:
            status, payload = 500, HTTPProblem(500, "no answer").payload()
            headers: dict[str, str] = {}
            async for kind, data in self.s.events(job):
                if kind == "answer":
                    status, payload = 200, data
                elif kind == "error":
                    status, payload, headers = _problem_payload(data)
            await _start(send, status, "application/json", headers)
            await _body(send, _json_bytes(payload), more=False)

        return produce

    async def search(self, request: Request) -> Response:
        label = self.s._auth(request)
        self.s._limit(label)
        data = await self.s._body(request)
        query = self.s._question(data.get("query"), "query")
        assistant = self.s._assistant_for(self.s._options(data))
        try:
            results = await run_in_threadpool(assistant.search, query)
        except RagbookError as exc:
            raise HTTPProblem(400, self.s.scrub(str(exc))) from None
        return JSONResponse(self.s._renamed({"query": query, "hits": [self.s.public_passage(h.to_dict()) for h in results]}))

    # -- OpenAI-compatible ---------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        self.s._auth(request)
        return JSONResponse({"object": "list", "data": [{"id": self.model_id, "object": "model",
                                                         "created": int(self.s.stats.started), "owned_by": "ragbook"}]})

    async def chat_completions(self, request: Request) -> Response | JobResponse:
        label = self.s._auth(request)
        self.s._limit(label)
        data = await self.s._body(request)
        question, history = self._conversation(data.get("messages"))
        job = self.s._submit(question, history, {}, label)
        chat_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        produce = self._completion_stream if data.get("stream") else self._completion
        return JobResponse(self.s, job, produce(job, chat_id))

    def _conversation(self, messages: Any) -> tuple[str, list[tuple[str, str]]]:
        """The last user message is the question; earlier user/assistant pairs are the history.

        System messages are read by no one: the assistant's own template sets its rules.
        """
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise HTTPProblem(400, "messages must be a non-empty list of {\"role\", \"content\"} objects")
        turns: list[tuple[str, str]] = []
        pending: str | None = None
        for m in messages[:-1]:
            text = _content_text(m.get("content"))
            if m.get("role") == "user":
                pending = text
            elif m.get("role") == "assistant" and pending is not None:
                turns.append((pending, text))
                pending = None
        last = messages[-1]
        if last.get("role") != "user":
            raise HTTPProblem(400, "the last message must be the user's question")
        return self.s._question(_content_text(last.get("content"))), turns[-8:]

    def _completion(self, job: Job, chat_id: str) -> Callable[[Send], Awaitable[None]]:
        async def produce(send: Send) -> None:
            async for kind, data in self.s.events(job):
                if kind == "answer":
                    body = {"id": chat_id, "object": "chat.completion", "created": int(time.time()), "model": self.model_id,
                            "choices": [{"index": 0, "finish_reason": "length" if data.get("incomplete") else "stop",
                                         "message": {"role": "assistant",
                                                     "content": data["text"] + _sources_note(data)}}],
                            "usage": _usage(data), "ragbook": data}
                    await _start(send, 200, "application/json")
                    await _body(send, _json_bytes(body), more=False)
                    return
                if kind == "error":
                    status, payload, headers = _problem_payload(data)
                    await _start(send, status, "application/json", headers)
                    await _body(send, _json_bytes(payload), more=False)
                    return

        return produce

    def _completion_stream(self, job: Job, chat_id: str) -> Callable[[Send], Awaitable[None]]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            body = {"id": chat_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return b"data: " + _json_bytes(body) + b"\n\n"

        async def produce(send: Send) -> None:
            await _start(send, 200, "text/event-stream; charset=utf-8", {"x-accel-buffering": "no"})
            await _body(send, chunk({"role": "assistant", "content": ""}))
            streamed: list[str] = []
            async for kind, data in self.s.events(job):
                if kind == "token":
                    streamed.append(data["text"])
                    await _body(send, chunk({"content": data["text"]}))
                elif kind == "answer":
                    # what streamed is the model's own text; ragbook's checked answer may differ (a withheld claim,
                    # a citation added): say so after it, then the sources
                    tail = ""
                    if data["text"].strip() != "".join(streamed).strip():
                        tail = ("\n\n" if streamed else "") + (f"Checked answer: {data['text']}" if streamed else data["text"])
                    tail += _sources_note(data)
                    await _body(send, chunk({"content": tail}) if tail else b"")
                    await _body(send, chunk({}, "length" if data.get("incomplete") else "stop", usage=_usage(data),
                                            ragbook=data))
                elif kind == "error":
                    await _body(send, b"data: " + _json_bytes(_problem_payload(data)[1]) + b"\n\n")
                elif not kind:
                    await _body(send, b": keep-alive\n\n")
            await _body(send, b"data: [DONE]\n\n", more=False)

        return produce

    # -- errors --------------------------------------------------------------------------------

    async def problem(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        return JSONResponse(exc.payload(), status_code=exc.status, headers=exc.headers())

    async def crash(self, request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(HTTPProblem(500, "the server failed on this request; it is still running: try again",
                                        kind="server_error").payload(), status_code=500)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return JSONResponse(HTTPProblem(404, f"no such page: {request.url.path[:100]}", kind="not_found").payload(),
                            status_code=404)

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return JSONResponse(HTTPProblem(405, f"{request.method} is not allowed here", kind="method_not_allowed").payload(),
                            status_code=405)


def _content_text(content: Any) -> str:
    """An OpenAI message's content as text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _sources_note(answer: dict[str, Any]) -> str:
    """``Sources:`` and the cited passages' references, for clients that show only text."""
    passages = answer.get("passages") or []
    lines = [f"[{c['n']}] {passages[c['n'] - 1].get('citation', c.get('source'))}" for c in answer.get("citations") or []
             if c.get("valid") and 1 <= c["n"] <= len(passages)]
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


def _usage(answer: dict[str, Any]) -> dict[str, int]:
    tokens = answer.get("tokens") or {}
    prompt, completion = max(0, int(tokens.get("prompt") or 0)), max(0, int(tokens.get("completion") or 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
