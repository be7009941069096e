"""An assistant served by ``ragbook serve``, used from a student's own notebook: no model loaded here.

>>> bot = ragbook.connect("http://127.0.0.1:8000/#token=...")     # the link the teacher shared
>>> bot.ask("How many grace days do we get?")                     # an Answer, as a local assistant gives
>>> bot.search("grace days")                                       # Results with each passage's scores
>>> %ragbook use http://127.0.0.1:8000/#token=...                  # then %%ask, or %ragbook panel

The answers are :class:`~ragbook.answer.Answer` objects, citations and evidence resolved to the
passages, so they display and behave as local ones do.  A server that restarts, or asks to
wait (429, 503 with ``Retry-After``), is waited for and asked again, up to ``patience`` seconds.
Only the standard library talks HTTP here.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator, Sequence
from urllib.parse import parse_qs, quote, urlsplit

from ragbook._display import html_escape, html_table
from ragbook.answer import Answer
from ragbook.assistant import StagedStream
from ragbook.errors import ServerError, SettingsError
from ragbook.retrieval import Hit, Results

__all__ = ["connect", "RemoteAssistant", "RemoteAnswerStream"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds without a byte from the server (it sends one every 10 s while a question waits)
DEFAULT_PATIENCE = 60.0  # seconds to keep asking again while the server restarts or asks to wait
_RETRIED = (429, 502, 503, 504)


def connect(url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
            patience: float = DEFAULT_PATIENCE) -> RemoteAssistant:
    """The assistant at ``url`` (a ``ragbook serve`` server); ``token``: the class token, or ``#token=`` in the link."""
    return RemoteAssistant(url, token, timeout=timeout, patience=patience)


@dataclass
class _Template:
    name: str
    description: str = ""
    no_answer: str = ""


class _RemoteIndex:
    """What a panel shows of a served index: its size and its documents' names."""

    def __init__(self, chunks: int, files: list[str]) -> None:
        self.chunks_count = chunks
        self.files: dict[str, dict[str, Any]] = {name: {} for name in files}

    def __len__(self) -> int:
        return self.chunks_count


class RemoteAssistant:
    """``ask``, ``stream``, ``chat`` and ``search`` of an assistant that runs on a server."""

    remote = True

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 patience: float = DEFAULT_PATIENCE, options: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"connect() needs the server's http:// or https:// address, not {url!r}")
        linked = parse_qs(parts.fragment).get("token") or parse_qs(parts.query).get("token")
        self.token = token or (linked[0] if linked else None)
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout, self.patience = float(timeout), float(patience)
        self.options = dict(options or {})
        self.history: list[tuple[str, str]] = []
        self._info = info if info is not None else self._call("GET", "/api/info")

    # -- what the server says about itself ----------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._info.get("name", ""))

    @property
    def llm_name(self) -> str:
        return str(self._info.get("llm", ""))

    @property
    def extractive(self) -> bool:
        return bool(self._info.get("extractive"))

    @property
    def template(self) -> _Template:
        return _Template(str(self._info.get("template", "")), "as the server's assistant is set",
                         str(self._info.get("no_answer", "")))

    @property
    def index(self) -> _RemoteIndex:
        return _RemoteIndex(int(self._info.get("chunks", 0)), list(self._info.get("files", [])))

    @property
    def k(self) -> int:
        return int(self.options.get("k", self._info.get("k", 0)))

    def info(self) -> dict[str, Any]:
        """The server's description of the assistant, asked again now."""
        self._info = self._call("GET", "/api/info")
        return dict(self._info)

    # -- asking --------------------------------------------------------------------------------

    def ask(self, question: str, *, chat: bool = False) -> Answer:
        stream = self.stream(question, chat=chat)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def chat(self, question: str) -> Answer:
        return self.ask(question, chat=True)

    def stream(self, question: str, *, chat: bool = False, history: Sequence[tuple[str, str]] | None = None,
               on_stage: Callable[[str, str], None] | None = None) -> RemoteAnswerStream:
        """Iterate for the answer's text as the server writes it; ``.answer`` after (see Assistant.stream)."""
        if not isinstance(question, str) or not question.strip():
            raise SettingsError("the question is empty: ask something about the documents")
        if chat and history is not None:
            raise SettingsError("give history= or chat=True, not both")
        turns = list(history) if history is not None else self.history if chat else []
        return RemoteAnswerStream(self, question.strip(), turns, self.history if chat else None, on_stage)

    def search(self, query: str, **options: Any) -> Results:
        """The passages the server's retrieval finds (``k=``, ``mode=`` for this search)."""
        data = self._call("POST", "/api/search", {"query": query, **self.options, **self._checked(options)})
        return Results(query=str(data.get("query", query)), hits=[Hit.from_dict(h) for h in data.get("hits", [])])

    def reset(self) -> None:
        """Forget the conversation (kept here: the server keeps no one's conversation)."""
        self.history.clear()

    def copy(self, **options: Any) -> RemoteAssistant:
        """The same server with ``k=`` or ``mode=`` for every question (what ``%%ask -k 5`` uses)."""
        return RemoteAssistant(self.url, self.token, timeout=self.timeout, patience=self.patience,
                               options={**self.options, **self._checked(options)}, info=self._info)

    @staticmethod
    def _checked(options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - {"k", "mode"}
        if unknown:
            raise SettingsError(f"a served assistant takes k= and mode= only, not {', '.join(sorted(unknown))}: the "
                                "other settings are the server's")
        return {k: v for k, v in options.items() if v is not None}

    def panel(self) -> Any:
        """A chat panel on the served assistant."""
        from ragbook.widgets.chat import Chat

        return Chat(self, models=[(f"{self.llm_name} (on the server)", self.llm_name)])

    # -- HTTP ----------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def _open(self, method: str, path: str, body: dict[str, Any] | None = None,
              accept: str = "application/json") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """A response with status 200, asking again while the server restarts or asks to wait (up to ``patience``)."""
        headers = {"Accept": accept, "User-Agent": "ragbook-connect"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        give_up = time.monotonic() + self.patience
        pause = 0.5
        while True:
            conn = self._connection()
            try:
                conn.request(method, self._prefix + quote(path), body=payload, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if time.monotonic() + pause > give_up:
                    raise ServerError(f"cannot reach {self.url} ({exc.__class__.__name__}: {exc}); is `ragbook serve` "
                                      "running there?") from None
                log.info("%s unreachable (%s); asking again in %.1f s", self.url, exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            if response.status == 200:
                return conn, response
            error = _error(response)
            conn.close()
            wait = error.retry_after if error.retry_after is not None else pause
            if response.status in _RETRIED and time.monotonic() + wait <= give_up:
                log.info("%s: %s; asking again in %.0f s", self.url, error, wait)
                time.sleep(wait)
                pause = min(pause * 2, 5.0)
                continue
            raise error

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn, response = self._open(method, path, body)
        try:
            data = json.loads(response.read().decode("utf-8"))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ServerError(f"{self.url}{path} sent a broken answer ({exc})") from None
        finally:
            conn.close()
        if not isinstance(data, dict):
            raise ServerError(f"{self.url}{path} did not send a JSON object")
        return data

    def __repr__(self) -> str:
        return (f"RemoteAssistant(url={self.url!r}, name={self.name!r}, llm={self.llm_name!r}, "
                f"chunks={len(self.index)}" + (f", options={self.options}" if self.options else "") + ")")

    def _repr_html_(self) -> str:
        rows = [["server", self.url], ["language model", self.llm_name], ["template", self.template.name],
                ["retrieval", f"{self._info.get('mode')}, k={self.k}"],
                ["documents", f"{len(self.index.files)} files, {len(self.index):,} passages"]]
        return f"<div class='ragbook-assistant'><b>{html_escape(self.name)}</b>{html_table(['', ''], rows)}</div>"


def _error(response: http.client.HTTPResponse) -> ServerError:
    """The server's JSON error as a ServerError with its status and Retry-After."""
    try:
        raw = response.read(64 * 1024)
        message = json.loads(raw.decode("utf-8"))["error"]["message"]
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        message = f"HTTP {response.status} {response.reason}"
    retry = response.getheader("Retry-After")
    return ServerError(f"the server says: {message}", status=response.status,
                       retry_after=float(retry) if retry and retry.isdigit() else None)


def _events(response: http.client.HTTPResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as ``(event, data)``; comments (keep-alives) skipped."""
    kind, data = "message", list[str]()
    while True:
        line = response.readline(1 << 20)
        if not line:
            return
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif text.startswith("event:"):
            kind = text[6:].strip()
        elif text.startswith("data:"):
            data.append(text[5:].lstrip())


class _Dropped(Exception):
    """The event stream ended before its answer: the server went away."""


class RemoteAnswerStream(StagedStream):
    """Iterate for the answer's text pieces; ``.answer`` holds the checked Answer after (like AnswerStream)."""

    def __init__(self, remote: RemoteAssistant, question: str, history: list[tuple[str, str]],
                 conversation: list[tuple[str, str]] | None, on_stage: Callable[[str, str], None] | None) -> None:
        self.remote, self.question, self.history = remote, question, list(history)
        self._conversation = conversation
        self.on_stage = on_stage
        self.stage = "waiting"
        self.answer = None
        self._iter = self._run()

    def _run(self) -> Generator[str, None, None]:
        r = self.remote
        body = {"question": self.question, "stream": True, **r.options,
                "history": [{"question": q, "answer": a} for q, a in self.history[-8:]]}
        give_up = time.monotonic() + r.patience
        while True:
            conn, response = r._open("POST", "/api/ask", body, accept="text/event-stream")
            try:
                yield from self._read(response)
                return
            except ServerError:  # the server answered, with a refusal: asking again would not change it
                raise
            except (_Dropped, OSError, http.client.HTTPException) as exc:
                if time.monotonic() > give_up:
                    raise ServerError(f"the connection to {r.url} was lost before the answer came ({exc or 'closed'})") from None
                log.info("the answer stream from %s broke (%s); asking again", r.url, exc)
                self._enter("waiting", "the server went away; asking again\u2026")
                time.sleep(1.0)
            finally:
                conn.close()

    def _read(self, response: http.client.HTTPResponse) -> Iterator[str]:
        for kind, data in _events(response):
            if kind == "queue":
                ahead = int(data.get("position", 0))
                self._enter("waiting", "yours is next\u2026" if ahead == 0 else
                            f"{ahead} question{'s' if ahead != 1 else ''} ahead of yours\u2026")
            elif kind == "stage":
                self._enter(str(data.get("stage", "")), str(data.get("text", "")))
            elif kind == "token":
                yield str(data.get("text", ""))
            elif kind == "answer":
                self.answer = Answer.from_dict(data)
                if self._conversation is not None:
                    self._conversation.append((self.question, self.answer.text))
                self._enter("done", "")
                return
            elif kind == "error":
                raise ServerError(f"the server says: {data.get('message', 'the answer failed')}",
                                  status=int(data.get("status") or 500), retry_after=data.get("retry_after"))
        raise _Dropped("the server closed the answer stream")

