"""HTTP for servers that are not trusted to behave: a deadline over a whole exchange, bounded reads.

:class:`Watchdog` shuts a request's socket down when its time is up (a socket timeout bounds
each wait for bytes, not the exchange: a server that sends a byte or a keep-alive just often
enough would otherwise hold the client for ever).  :class:`Response` reads with a size cap on
every call.  :class:`EventStream` reads server-sent events a bounded line at a time.  Redirects
are followed only for a GET to the same origin (urllib would carry the API key to any host).
Standard library only.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator

from ragbook._display import shorten
from ragbook.errors import LLMError

__all__ = ["MB", "MAX_LINE_BYTES", "MAX_ERROR_BYTES", "Expired", "Cut", "NotJSON", "Watchdog", "Response",
           "EventStream", "open_request", "clean", "server_message", "parse_json", "check_event_stream"]

MB = 1 << 20
MAX_LINE_BYTES = MB          # one event line or event; a chat-completion chunk is a few hundred bytes
MAX_ERROR_BYTES = 64 * 1024  # what is read of an error body: it is only shown, shortened
_SSE_FIELDS = ("data:", ":", "event:", "id:", "retry:")


class Expired(Exception):
    """The time allowed for an exchange ran out; the caller turns it into its own LLMTimeoutError."""


class Cut(Exception):
    """The connection broke while a response body was being read."""


class NotJSON(LLMError):
    """A response that should have been JSON was not."""


def clean(value: Any, width: int = 300) -> str:
    """Text a server sent, safe to put in a message: on one line, cut short, control characters escaped.

    Escaping keeps a hostile server from writing terminal escape sequences or reversed text
    into a user's terminal through an error message.
    """
    text = shorten(value if isinstance(value, str) else str(value)[: 4 * width], width)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def server_message(raw: bytes | str) -> str:
    """The message in an error body (``{"error": {"message": ...}}``, ``{"detail": ...}``), or its text, cleaned."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return clean(text.strip())
    err = payload.get("error", payload.get("detail", payload)) if isinstance(payload, dict) else payload
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return clean(err["message"])
    return clean(err if isinstance(err, str) else json.dumps(err))


def parse_json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
        raise NotJSON(f"{url} sent a response that is not JSON: {clean(raw[:200].decode('utf-8', 'replace'), 200)!r}. "
                      f"Is this an OpenAI-compatible API root (usually ending in /v1)?") from None


# -- the deadline ----------------------------------------------------------------------------------


class Watchdog:
    """Shuts the sockets handed to it down once ``seconds`` have passed, waking any blocked read."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._until = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if seconds < threading.TIMEOUT_MAX:  # beyond it (or inf): no limit, as no timer could wait that long
            self._timer = threading.Timer(max(seconds, 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    @property
    def over(self) -> bool:
        """Whether the time is up (a socket timeout may notice it just before the timer does)."""
        return self.fired or time.monotonic() >= self._until

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:  # a timer already firing finishes before the caller closes the sockets
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:  # the plain socket call, also for a TLS socket: it wakes a read blocked in another thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """An ``http.client`` connection whose socket is handed to a :class:`Watchdog` once connected."""

    def __init__(self, *args: Any, watchdog: Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watchdog.watch(self.sock)  # type: ignore[attr-defined]


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> Any:
        # bound with partial: do_open's protocol for the class knows no extra keyword such as watchdog
        return self.do_open(functools.partial(_WatchedHTTP, watchdog=self._watchdog), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    _context: ssl.SSLContext | None  # set by HTTPSHandler.__init__, missing from typeshed

    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_WatchedHTTPS, watchdog=self._watchdog), req, context=self._context)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only for a GET to the same scheme, host and port, keeping the key.

    urllib would follow any redirect and carry an ``Authorization`` header to the new host, and
    turn a POST into a GET without its body: both are refused with a message instead.
    """

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if req.get_method() != "GET" or _origin(target) != _origin(req.full_url):
            fp.close()
            raise LLMError(f"{req.full_url} redirects (HTTP {code}) to {clean(target, 200)}: ragbook does not follow "
                           f"a redirect to another server (it could receive the API key) or of a request with a "
                           f"body. If that is the right server, give its address as the base URL.")
        new = super().redirect_request(req, fp, code, msg, headers, target)
        key = req.unredirected_hdrs.get("Authorization")
        if new is not None and key:
            new.add_unredirected_header("Authorization", key)
        return new


def open_request(request: urllib.request.Request, watchdog: Watchdog, timeout: float) -> Any:
    """``urlopen`` with the socket under ``watchdog`` and redirects limited to the same origin."""
    opener = urllib.request.build_opener(_HTTPHandler(watchdog), _HTTPSHandler(watchdog), _SameOriginRedirects())
    return opener.open(request, timeout=timeout)


class Response:
    """A response read under its exchange's watchdog, with a size limit on every read.

    A read raises :class:`Expired` once the watchdog fired, :class:`Cut` when the connection
    broke, and ``timeout_error(url)`` when the server sent nothing for a socket timeout.
    """

    def __init__(self, raw: Any, url: str, watchdog: Watchdog, timeout_error: Callable[[str], LLMError]) -> None:
        self.raw, self.url, self.watchdog, self._timeout_error = raw, url, watchdog, timeout_error
        self.headers = raw.headers

    def _call(self, read: Callable[[int], bytes], n: int) -> bytes:
        try:
            data = read(n)
        except (TimeoutError, socket.timeout) as exc:
            if self.watchdog.over:
                raise Expired() from None
            raise self._timeout_error(self.url) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a bad chunk size
            if self.watchdog.over:
                raise Expired() from None
            raise Cut(clean(exc, 120) or type(exc).__name__) from None
        if self.watchdog.fired:
            raise Expired()
        return data

    def readline(self, limit: int) -> bytes:
        """One line of at most ``limit`` bytes; an LLMError for a longer one."""
        line = self._call(self.raw.readline, limit + 1)
        if len(line) > limit and not line.endswith(b"\n"):
            raise LLMError(f"{self.url} streamed a line longer than {limit // 1024:,} KB "
                           f"({clean(line[:60].decode('utf-8', 'replace'), 60)!r}...): not a chat-completion stream")
        return line

    def read(self, cap: int, what: str) -> bytes:
        """The whole body, refused when it is over ``cap`` bytes."""
        data = self._call(self.raw.read, cap + 1)
        if len(data) > cap:
            raise LLMError(f"{self.url} sent {what} larger than {cap / MB:.1f} MB: refused, as a chat server does "
                           f"not send that much (does it ignore max_tokens?)")
        return data

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes, to show in a message; a broken connection gives nothing."""
        try:
            return self._call(self.raw.read, n)
        except Cut:
            return b""


def check_event_stream(response: Response, url: str) -> None:
    """Refuse a body that is not a stream of events when one was asked for (an error page, plain JSON)."""
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not ctype or ctype == "text/event-stream":
        return  # without a Content-Type, the first line decides (see EventStream)
    raw = response.read_some(MAX_ERROR_BYTES)
    raise LLMError(f"{url} was asked to stream (stream=true) but sent {clean(ctype, 60)}, not an event stream: "
                   f"{server_message(raw) if raw.strip() else '(empty)'}. Is this an OpenAI-compatible API root "
                   f"(usually ending in /v1)?")


class EventStream:
    """The JSON events of a server-sent-events body, read a bounded line at a time.

    Iterating raises :class:`LLMError` for what is not a chat-completion stream (a first line
    that is no event field, an event that is not a JSON object, an error event, more than
    ``max_bytes``) and :class:`Expired` once ``expired()``.  ``end`` then says how the stream
    ended: ``"done"`` (``data: [DONE]``), ``"closed"`` (the body ended without it) or why the
    connection broke.
    """

    def __init__(self, response: Response, url: str, max_bytes: int, expired: Callable[[], bool]) -> None:
        self.response, self.url, self.max_bytes, self.expired = response, url, max_bytes, expired
        self.end = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        data: list[str] = []
        size = total = 0
        kind = ""  # the "event:" field of the event being read
        first = True
        while True:
            try:
                raw = self.response.readline(MAX_LINE_BYTES)
            except Cut as cut:
                self.end = str(cut)
                return
            if self.expired():  # checked on every line: keep-alives never reach the caller
                raise Expired()
            if not raw:
                break
            total += len(raw)
            if total > self.max_bytes:
                raise LLMError(f"{self.url} streamed over {self.max_bytes / MB:.0f} MB of events for one answer: "
                               f"stopped; check the server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if first and line.strip():
                first = False
                if not line.startswith(_SSE_FIELDS):
                    raise LLMError(f"{self.url} was asked to stream (stream=true) but sent {clean(line, 200)!r}, not "
                                   f"an event stream. Is this an OpenAI-compatible API root (usually ending in /v1)?")
            if line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
                size += len(value)
                if size > MAX_LINE_BYTES:
                    raise LLMError(f"{self.url} streamed an event over {MAX_LINE_BYTES // 1024:,} KB: not a "
                                   f"chat-completion chunk")
                continue
            if line.startswith("event:"):
                kind = line[6:].strip()
                continue
            if line:  # comments (": ping"), "id:", "retry:", unknown fields: ignored, as the SSE standard says
                continue
            if not data:
                kind = ""
                continue
            payload, event_kind = "\n".join(data), kind
            data, size, kind = [], 0, ""
            if payload.strip() == "[DONE]":
                self.end = "done"
                return
            yield self._decode(payload, event_kind)
        self.end = "closed"
        if data:  # a last event without its blank line
            payload = "\n".join(data)
            if payload.strip() == "[DONE]":
                self.end = "done"
            else:
                yield self._decode(payload, kind)

    def _decode(self, payload: str, kind: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            event = None
        if kind == "error" or (isinstance(event, dict) and event.get("error") is not None):
            raise LLMError(f"{self.url} reported an error while streaming: {server_message(payload)}")
        if event is None:
            raise LLMError(f"{self.url} streamed an event that is not JSON: {clean(payload, 200)!r}")
        if not isinstance(event, dict):
            raise LLMError(f"{self.url} streamed {clean(payload, 200)!r}, not a chat-completion chunk")
        return event
