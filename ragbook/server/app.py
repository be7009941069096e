"""The HTTP server behind ``ragbook serve``: a student page, a JSON API and an OpenAI-compatible endpoint.

Starlette (the ASGI toolkit FastAPI is built on) gives the routing and the request/response
types; uvicorn runs it.  Nothing here needs FastAPI's schemas: the requests are a few small JSON
objects, checked by hand with messages a person can act on.

Every question goes through one :class:`~ragbook.server.jobs.JobLine` to the one model; each
client reads its own job's events.  Retrieval for ``/api/search`` runs beside the line.
See ``ragbook/server/__init__.py`` for the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, NoReturn

from ragbook.errors import LLMError, LLMTimeoutError, RagbookError, SettingsError
from ragbook.server.access import RateLimit, Tokens
from ragbook.server.jobs import Job, JobLine, LineFull
from ragbook.server.problems import ABSOLUTE_PATH, HTTPProblem, scrub
from ragbook.server.stats import QuestionLog, Record, Stats

__all__ = ["ServerConfig", "RagbookServer", "public_sources", "DEFAULT_RATE", "DEFAULT_MAX_WAITING"]

log = logging.getLogger(__name__)

DEFAULT_RATE = "60/min"  # per token: a class of 30 sharing one token, each asking every half minute
DEFAULT_MAX_WAITING = 64  # questions in line before a 429: two per student of a class of 30
DEFAULT_MAX_QUESTION_CHARS = 2000
DEFAULT_MAX_BODY_BYTES = 64 * 1024  # a question, a few turns of history and the options fit in a tenth of it
DEFAULT_ANSWER_TIMEOUT = 300.0  # seconds from leaving the line to the checked answer
DEFAULT_MAX_K = 20
BODY_TIMEOUT = 30.0  # seconds to send a request body: a client trickling bytes is cut off
KEEPALIVE = 10.0  # seconds between comments on a quiet event stream, so proxies and clients keep it open
BACKEND_RETRY = 10  # seconds a failed model is left alone before it is tried again
FAILURES_BEFORE_DOWN = 3  # model errors in a row that mark it down even when each looked like one question's
MAX_HISTORY_TURNS = 8
WRONG_TOKENS_PER_MINUTE = 30  # per address: a student mistyping is never stopped, a guesser is slowed
MODES = ("hybrid", "dense", "bm25")
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


@dataclass
class ServerConfig:
    """How ``ragbook serve`` shares an assistant (each field is a command-line option)."""

    tokens: Tokens = field(default_factory=Tokens)  # class tokens by label; empty with open_access
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)  # opens /stats
    open_access: bool = False  # no class token needed (the stats page still needs admin_token)
    parallel: int = 1  # answers the model writes at once: 1 in-process, more for a vLLM or llama.cpp server
    max_waiting: int = DEFAULT_MAX_WAITING
    rate: str = DEFAULT_RATE  # per token; "0" for none
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    answer_timeout: float = DEFAULT_ANSWER_TIMEOUT
    log_path: str | None = None  # the opt-in question log (JSONL)
    cors_origins: tuple[str, ...] = ()  # off by default: only the server's own page calls the API
    max_k: int = DEFAULT_MAX_K

    def __post_init__(self) -> None:
        if not self.open_access and not len(self.tokens):
            raise SettingsError("a server needs a class token (--token, --tokens FILE) or --open for anyone who can "
                                "reach it")
        for name in ("parallel", "max_question_chars", "max_body_bytes", "max_k"):
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"{name} must be 1 or more, not {getattr(self, name)!r}")
        if self.max_waiting < 0 or self.answer_timeout <= 0:
            raise SettingsError("max_waiting must be 0 or more and answer_timeout more than 0 seconds")
        if str(self.rate) != "0":
            RateLimit.parse(self.rate)
        if len(self.admin_token) < 8 or any(c.isspace() for c in self.admin_token):
            raise SettingsError("the admin token needs 8 or more characters and no spaces")


def _unreachable(exc: BaseException) -> bool:
    """Whether a model error says the model cannot be reached (a dead server), not that it refused one prompt."""
    text = str(exc).lower()
    return (isinstance(exc.__cause__, OSError) or isinstance(exc, LLMTimeoutError)
            or any(w in text for w in ("cannot reach", "cannot connect", "connection", "refused", " 502", " 503", " 504",
                                       "was closed")))


class _Gone(Exception):
    """The asker left while the answer was on its way."""


class RagbookServer:
    """One assistant served to many: the job line, the limits, the stats, and the Starlette app (``.app``)."""

    def __init__(self, assistant: Any, config: ServerConfig | None = None) -> None:
        self.assistant = assistant
        self.config = config or ServerConfig(open_access=True)
        self.rate = None if str(self.config.rate) == "0" else RateLimit.parse(self.config.rate)
        self._wrong_tokens = RateLimit(WRONG_TOKENS_PER_MINUTE, 60)
        self.stats = Stats()
        self.question_log = QuestionLog(self.config.log_path) if self.config.log_path else None
        self._copies: dict[tuple[Any, ...], Any] = {}
        self._copies_lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self._failures = 0  # model failures in a row: a few mean the model is gone, one may be one question's
        self.sources = public_sources(assistant.index)
        self._private_folders = private_folders(assistant.index)
        model = None if assistant.extractive else assistant.llm  # loaded now, not at the first question
        if model is not None and getattr(model, "deadline", 0) is None:
            model.deadline = self.config.answer_timeout  # the backend stops a stuck answer itself (a server that drips)
        self.line = JobLine(self._answer, parallel=self.config.parallel, max_waiting=self.config.max_waiting)
        self.app = self._build_app()

    # -- answering (worker threads) ----------------------------------------------------------

    def _assistant_for(self, options: dict[str, Any]) -> Any:
        """The assistant with a request's own ``k``/``mode``: one copy per choice, sharing the loaded model."""
        if not options:
            return self.assistant
        key = tuple(sorted(options.items()))
        with self._copies_lock:
            if key not in self._copies:
                self._copies[key] = self.assistant.copy(**options)
            return self._copies[key]

    def _answer(self, job: Job) -> None:
        """Run one question (in a worker thread), handing its events to the job; never raises for a model failure."""
        assistant = self._assistant_for(job.options)
        assert job.started_at is not None
        deadline = job.started_at + self.config.answer_timeout
        record = Record(time=time.time(), label=job.label, question=job.question, outcome="cancelled",
                        waited_s=round(job.started_at - job.queued_at, 3))

        def stage(name: str, text: str) -> None:
            if job.cancelled.is_set() and name in ("searching", "reading"):
                raise _Gone  # before the model reads the prompt: a student who left costs no model time
            if name != "done":
                job.emit("stage", {"stage": name, "text": text})

        stream = assistant.stream(job.question, history=job.history, on_stage=stage)
        try:
            for piece in stream:
                if job.cancelled.is_set():
                    break
                if time.monotonic() > deadline:
                    raise LLMTimeoutError(f"no answer within {self.config.answer_timeout:g} s")
                job.emit("token", {"text": piece})
            else:
                answer = stream.answer
                self._backend_up()
                payload = self.public_answer(answer)
                record.outcome = "abstained" if answer.abstained else "answered"
                record.mode = answer.mode
                record.cited = [{"n": c["n"], "source": c["source"], "page": c["page"]} for c in payload["citations"]]
                record.first_token_s = answer.timings.get("first_token")
                record.total_s = answer.timings.get("total")
                job.emit("answer", payload)
        except _Gone:
            pass
        except (LLMTimeoutError, TimeoutError) as exc:
            record.outcome, record.status = "timeout", 504
            job.emit("error", {"message": f"the answer took too long ({self.scrub(str(exc))}); ask a shorter question, or "
                               "try again when fewer people are asking", "status": 504})
        except LLMError as exc:
            self._failures += 1
            if _unreachable(exc) or self._failures >= FAILURES_BEFORE_DOWN:
                record.outcome, record.status = "error", 503
                self._backend_down(str(exc))
                job.emit("error", {"message": "the language model is not answering right now; try again in "
                                   f"{BACKEND_RETRY} s", "status": 503, "retry_after": BACKEND_RETRY})
            else:  # about this question only (a prompt the model refuses): the others are still answered
                record.outcome, record.status = "error", 500
                log.warning("the language model failed on one question: %s", exc)
                job.emit("error", {"message": f"the language model could not answer this question ({self.scrub(str(exc))[:300]})",
                                   "status": 500})
        except RagbookError as exc:
            record.outcome, record.status = "error", 400
            job.emit("error", {"message": self.scrub(str(exc)), "status": 400})
        finally:
            stream.close()
            self.stats.add(record)
            if self.question_log is not None:
                try:
                    self.question_log.write(record)
                except OSError as exc:  # a full disk must not stop the answers
                    log.warning("cannot write the question log: %s", exc)

    def _backend_up(self) -> None:
        self._failures = 0
        if self._down_until:
            log.info("the language model answers again")
        self._down_until = 0.0

    def _backend_down(self, reason: str) -> None:
        log.warning("the language model failed: %s (new questions get 503 for %d s)", reason, BACKEND_RETRY)
        self._down_until = time.monotonic() + BACKEND_RETRY
        self._down_reason = reason

    def backend_state(self) -> tuple[bool, int]:
        """``(up, seconds until it is tried again)``."""
        left = self._down_until - time.monotonic()
        return (left <= 0, max(1, math.ceil(left)) if left > 0 else 0)

    def scrub(self, text: str) -> str:
        """``text`` without the server's paths (the documents' folders, home, the working folder)."""
        return scrub(text, self._private_folders)

    def llm_label(self) -> str:
        """The model's name as clients see it (a file's name, not its path)."""
        return Path(str(self.assistant.llm_name)).name

    def public_answer(self, answer: Any) -> dict[str, Any]:
        """The answer as JSON for a client: passages, citations and checks, documents named by their own names."""
        data = answer.to_dict()
        data["abstained"] = answer.abstained
        data["llm"] = Path(str(data.get("llm") or "")).name
        data["passages"] = [self.public_passage(p) for p in data["passages"]]
        return self._renamed(data)

    def public_passage(self, passage: dict[str, Any]) -> dict[str, Any]:
        """A passage as clients see it: without where its file lies on the server (an index keeps that)."""
        metadata = passage.get("metadata")
        if isinstance(metadata, dict):
            passage["metadata"] = _without_paths(metadata)
        if passage.get("also_in"):
            passage["also_in"] = [self.public_passage(dict(c)) for c in passage["also_in"] if isinstance(c, dict)]
        return passage

    def _renamed(self, data: Any) -> Any:
        """``data`` with every source that is a server path replaced by its public name."""
        private = {s: p for s, p in self.sources.items() if s != p}
        if not private:
            return data
        text = json.dumps(data, ensure_ascii=False)
        for source in sorted(private, key=len, reverse=True):
            text = text.replace(json.dumps(source, ensure_ascii=False)[1:-1], json.dumps(private[source])[1:-1])
        return json.loads(text)

    # -- requests ----------------------------------------------------------------------------

    def _auth(self, request: Any, *, admin: bool = False) -> str:
        """The token's label, or an HTTPProblem (401, or 429 over the rate limit)."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-ragbook-token", "")
        if admin:
            admin_token = self.config.admin_token.encode()
            for given in (token, request.query_params.get("token", "")):
                if given and hmac.compare_digest(given.encode("utf-8", "replace"), admin_token):
                    return "teacher"
            self._refuse(request, "the stats page needs the teacher's token (printed when the server started)")
        label = self.config.tokens.label(token)
        if label is None:
            if not self.config.open_access:
                self._refuse(request, "this assistant needs the class token: open the link your teacher shared, or "
                                      "send 'Authorization: Bearer TOKEN'")
            # open: each address has its own share of the rate limit (no one can use up everyone's)
            label = f"open:{request.client.host if request.client else '?'}"
        return label

    def _refuse(self, request: Any, message: str) -> NoReturn:
        """401, or 429 for an address that keeps sending wrong tokens (guessing costs time, and fills no log)."""
        wait = self._wrong_tokens.take(request.client.host if request.client else "?")
        if wait:
            raise HTTPProblem(429, f"too many wrong tokens from this address; try again in {wait:.0f} s",
                              kind="rate_limited", retry_after=int(wait))
        raise HTTPProblem(401, message, kind="authentication_error")

    def _limit(self, label: str) -> None:
        if self.rate is not None:
            wait = self.rate.take(label)
            if wait:
                raise HTTPProblem(429, f"too many questions with this token ({self.config.rate}); try again in "
                                  f"{wait:.0f} s", kind="rate_limited", retry_after=int(wait))

    async def _body(self, request: Any) -> dict[str, Any]:
        """The request's JSON object: 413 when too big, 408 when too slow, 400 when not a JSON object."""
        cap = self.config.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            raise HTTPProblem(413, f"the request is larger than {cap:,} bytes", kind="request_too_large")

        async def read() -> bytes:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > cap:
                    raise HTTPProblem(413, f"the request is larger than {cap:,} bytes", kind="request_too_large")
            return bytes(body)

        from starlette.requests import ClientDisconnect

        try:
            raw = await asyncio.wait_for(read(), BODY_TIMEOUT)
        except asyncio.TimeoutError:
            raise HTTPProblem(408, f"the request body took more than {BODY_TIMEOUT:g} s to arrive") from None
        except ClientDisconnect:
            raise HTTPProblem(400, "the client left before its request was sent") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate ("\ud800") cannot be sent back
        except (UnicodeError, ValueError, RecursionError) as exc:
            raise HTTPProblem(400, f"the body is not valid UTF-8 JSON ({exc.__class__.__name__}: {str(exc)[:200]})") from None
        if not isinstance(data, dict):
            raise HTTPProblem(400, "the body must be a JSON object, like {\"question\": \"...\"}")
        return data

    def _question(self, value: Any, what: str = "question") -> str:
        if not isinstance(value, str) or not value.strip():
            raise HTTPProblem(400, f"the {what} is missing or empty: send {{\"{what}\": \"...\"}}")
        if len(value) > self.config.max_question_chars:
            raise HTTPProblem(413, f"the {what} is {len(value):,} characters long; keep it under "
                              f"{self.config.max_question_chars:,}", kind="request_too_large")
        return value.strip()

    def _options(self, data: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if data.get("k") is not None:
            k = data["k"]
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.config.max_k:
                raise HTTPProblem(400, f"k must be a whole number from 1 to {self.config.max_k}")
            options["k"] = k
        if data.get("mode") is not None:
            if data["mode"] not in MODES:
                raise HTTPProblem(400, f"mode must be one of {', '.join(MODES)}")
            options["mode"] = data["mode"]
        return options

    def _history(self, value: Any) -> list[tuple[str, str]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("question"), str)
                                                   and isinstance(t.get("answer"), str) for t in value):
            raise HTTPProblem(400, "history must be a list of {\"question\": ..., \"answer\": ...} objects")
        return [(t["question"][:self.config.max_question_chars], t["answer"][:4000]) for t in value[-MAX_HISTORY_TURNS:]]

    def _submit(self, question: str, history: list[tuple[str, str]], options: dict[str, Any], label: str) -> Job:
        up, wait = self.backend_state()
        if not up:
            raise HTTPProblem(503, f"the language model is not answering right now; try again in {wait} s",
                              kind="backend_unavailable", retry_after=wait)
        job = Job(question, history=history, options=options, label=label, loop=asyncio.get_running_loop())
        try:
            self.line.submit(job)
        except LineFull as exc:
            raise HTTPProblem(429, f"{self.line.waiting} questions are waiting already; try again in {exc.retry_after} s",
                              kind="queue_full", retry_after=exc.retry_after) from None
        return job

    async def events(self, job: Job) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The job's events up to its answer or error; ``("", {})`` now and then while nothing happens."""
        hard_limit = self.config.answer_timeout + 60
        while True:
            try:
                kind, data = await asyncio.wait_for(job.events.get(), KEEPALIVE)
            except asyncio.TimeoutError:
                if job.started_at is not None and time.monotonic() - job.started_at > hard_limit:
                    self._backend_down("an answer is stuck past the answer timeout")  # its worker may be held
                    yield "error", {"message": "the answer took too long; try again", "status": 504}
                    return
                yield "", {}
                continue
            yield kind, data
            if kind in ("answer", "error"):
                return

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        from ragbook.server import routes

        middleware = []
        if self.config.cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            middleware.append(Middleware(CORSMiddleware, allow_origins=list(self.config.cors_origins),
                                         allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"]))
        r = routes.Routes(self)
        app = Starlette(routes=[
            Route("/", r.page, methods=["GET"]),
            Route("/api/health", r.health, methods=["GET"]),
            Route("/api/info", r.info, methods=["GET"]),
            Route("/api/ask", r.ask, methods=["POST"]),
            Route("/api/search", r.search, methods=["POST"]),
            Route("/api/stats", r.stats_json, methods=["GET"]),
            Route("/stats", r.stats_page, methods=["GET"]),
            Route("/v1/models", r.models, methods=["GET"]),
            Route("/v1/chat/completions", r.chat_completions, methods=["POST"]),
        ], middleware=middleware, exception_handlers={HTTPProblem: r.problem, Exception: r.crash, 404: r.not_found,
                                                      405: r.not_allowed},
            lifespan=self._lifespan)
        return _SecurityHeaders(app)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        yield
        self.close()

    def close(self) -> None:
        self.line.close()


class _SecurityHeaders:
    """Adds the headers every response should carry (no sniffing, no framing, no caching, no referrer)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in _HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _without_paths(value: Any) -> Any:
    """Metadata without where files lie on the server: no "path"/"root" keys, no string that holds a path."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k not in ("path", "root", "folder", "file")
                and not (isinstance(v, str) and (os.path.isabs(v) or ABSOLUTE_PATH.search(v)))}
    if isinstance(value, list):
        return [_without_paths(v) for v in value if not (isinstance(v, str) and (os.path.isabs(v) or ABSOLUTE_PATH.search(v)))]
    return value


def private_folders(index: Any) -> list[str]:
    """The server's folders a message might name: where the documents and the index lie, home, here."""
    folders = {str(Path.home()), os.getcwd(), tempfile.gettempdir(), sys.prefix}
    for record in (getattr(index, "files", {}) or {}).values():
        if isinstance(record, dict):
            folders.update(str(record.get(k) or "") for k in ("root",))
            if record.get("path"):
                folders.add(str(Path(str(record["path"])).parent))
    if getattr(index, "path", None):
        folders.add(str(index.path))
    return sorted(f for f in folders if f and f not in ("/", "."))


def public_sources(index: Any) -> dict[str, str]:
    """Each document's name as clients see it: its own name, never a server path.

    An index names a file by its path only when two files share a name; the public name is then
    the shortest ending of that path that no other document has.
    """
    names = list(getattr(index, "files", {}) or {})
    out: dict[str, str] = {}
    for source in names:
        if not (os.path.isabs(source) or re.match(r"^[A-Za-z]:[\\/]", source)):
            out[source] = source
            continue
        parts = Path(source.replace("\\", "/")).parts[1:]
        for n in range(1, len(parts) + 1):
            candidate = "/".join(parts[-n:])
            if candidate not in names and candidate not in out.values():
                out[source] = candidate
                break
        else:
            out[source] = "/".join(parts[-2:])
    return out
