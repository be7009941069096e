"""Any server that speaks OpenAI's chat-completions API: llama.cpp's server, llama-cpp-python's
``python -m llama_cpp.server``, vLLM, Ollama, LM Studio, or OpenAI itself.

Standard library only (``urllib``): no client package to install.  The key is sent only when
given: ``api_key="..."`` (kept out of :meth:`OpenAILLM.info`) or ``api_key_env="NAME"`` (the
variable's name is recorded, its value read at each request).  ``OPENAI_API_KEY`` is *not*
read on its own: pointing ragbook at a local server must never send someone's OpenAI key to it.
Nor is the key sent anywhere else: a redirect to another server (or of a request with a body)
is refused, not followed.

The server is not trusted to behave.  ``timeout`` bounds connecting and each wait for more
bytes; ``deadline`` (300 s unless given) bounds the whole answer, keep-alives and slow drips
included, raising :class:`~ragbook.errors.LLMTimeoutError`.  Whatever the server sends, the
client keeps at most about ``max_tokens`` worth of text (then ``finish_reason="length"``),
reads event lines and JSON bodies only up to a size cap, and refuses a body that is not what
was asked for.  A stream that stops after some text without its end (``data: [DONE]`` or a
``finish_reason``) gives a :class:`~ragbook.llm.Generation` marked ``incomplete``.

The server applies the model's chat template, so this client cannot know the exact prompt:
:meth:`OpenAILLM.render` gives a ChatML rendering.  :meth:`OpenAILLM.count_tokens` asks the
server's own tokenizer when it has an endpoint for it (llama-cpp-python
``/extras/tokenize/count``, llama.cpp and vLLM ``/tokenize``), and otherwise falls back to a
deliberately high estimate (:func:`estimate_tokens`).  The counts in a :class:`Generation`
are the server's own when it reports ``usage``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Generator, Iterator, Sequence

from ragbook.errors import LLMTimeoutError, SettingsError
from ragbook.llm._http import (
    MAX_ERROR_BYTES,
    MB,
    Cut,
    EventStream,
    Expired,
    NotJSON,
    Response,
    Watchdog,
    check_event_stream,
    clean,
    open_request,
    parse_json,
    server_message,
)
from ragbook.llm.base import LLM, LLMError, Params, Usage, check_deadline, deadline_error, normalize_messages

__all__ = ["OpenAILLM", "estimate_tokens", "DEFAULT_TIMEOUT", "DEFAULT_DEADLINE"]

START_SERVER = "python -m llama_cpp.server --model MODEL.gguf --host 127.0.0.1 --port 8000"
DEFAULT_TIMEOUT = 60.0    # seconds to connect, and to wait for each further byte
DEFAULT_DEADLINE = 300.0  # seconds for a whole answer from a remote server
MAX_TIMEOUT = 86400.0     # a day: sockets cannot wait for ever (a larger timeout overflows)
MAX_INFO_BYTES = 4 * MB   # a model list, a token count
# Text kept per answer token.  English averages 4-5 characters a token and code little more, so
# 32 on average is far above any real answer (long tokens such as runs of spaces are rare),
# while a server that ignores max_tokens is stopped at a small multiple of what was asked.
CHARS_PER_TOKEN = 32
SLACK_CHARS = 256         # for tiny max_tokens, whose one token may be long
STREAM_BYTES_PER_TOKEN = 1024  # event bytes allowed per answer token (a chunk is a few hundred)


class _NoCount(LLMError):
    """The server answered, but not with a token count: it has no such endpoint."""


class _HTTPStatusError(LLMError):
    """The server answered with an HTTP error status."""


def estimate_tokens(text: str) -> int:
    """A token count that BPE tokenizers rarely exceed, for servers that cannot count.

    A token per digit and per ASCII symbol (numbers are split digit by digit by Qwen and
    SmolLM2; code punctuation merges little), one per 2 bytes of non-ASCII text (Cyrillic, CJK),
    one per 3 other characters (English averages 4-5 a token).  It runs 40-70% high on English
    prose and code: that wastes some context, where an underestimate would overflow it.
    English-only tokenizers on other European languages can exceed it.
    """
    digits = symbols = non_ascii = rest = 0
    for i, c in enumerate(text):
        if c.isdigit():
            digits += 1
        elif not c.isascii():
            non_ascii += len(c.encode("utf-8"))
        elif c.isalpha() or (c.isspace() and not text[i + 1: i + 2].isdigit()):
            rest += 1
        else:  # punctuation, and a space before a digit (often a token of its own)
            symbols += 1
    return digits + symbols + math.ceil(non_ascii / 2) + math.ceil(rest / 3)


def _count(value: Any) -> int | None:
    """A token count a server reported, if it is a plausible one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000_000:
        return value
    return None


def _finish(value: Any) -> str | None:
    """A server's ``finish_reason`` ("stop", "length", "content_filter"...), or None when it gave none."""
    if value is None or value == "":
        return None
    # anything else (escape sequences, a paragraph) is not passed on: it is read as the end it announces
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z_]{1,40}", value) else "stop"


class OpenAILLM(LLM):
    """A model behind an OpenAI-compatible HTTP server.

    ``base_url`` is the API root (``http://127.0.0.1:8000/v1``).  Without ``model`` the first
    model the server lists is used (llama.cpp servers serve one).  ``context_window`` is the
    server's context size when it says so (vLLM in ``/models``, llama.cpp in ``/props``), else
    4096: give it for other servers (llama-cpp-python's is its ``--n_ctx``).  ``timeout`` bounds
    connecting and each wait for more bytes; ``deadline`` the whole answer (``None``: no limit).
    """

    backend = "openai"
    prefix = "openai:"

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAILLM:
        """``"openai:http://host:port/v1"``, with ``#model`` to pick the server's model."""
        url, _, model = spec.removeprefix(cls.prefix).partition("#")
        if model:
            kwargs.setdefault("model", model)
        return cls(url, **kwargs)

    @classmethod
    def from_info(cls, info: dict[str, Any], **kwargs: Any) -> OpenAILLM:
        for key in ("api_key_env", "timeout", "context_window", "name"):
            if key in info:
                kwargs.setdefault(key, info[key])
        return cls(info["url"], model=info["model"], **kwargs)

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 deadline: float | None = DEFAULT_DEADLINE, context_window: int | None = None,
                 name: str | None = None, server_tokenizer: bool = True) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise LLMError(f"{base_url!r} is not an http(s) URL; try 'http://127.0.0.1:8000/v1'")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.api_key_env = api_key_env
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
            raise SettingsError(f"timeout must be a number of seconds > 0 and <= {MAX_TIMEOUT:g}, not {timeout!r}")
        self.timeout = float(timeout)
        self.deadline = check_deadline(deadline)
        listed: dict[str, Any] = {}
        if model is None or context_window is None:
            listed = self._list_models(model)
        self.model = model or listed["id"]
        self.name = name or self.model
        self.context_window = int(context_window or _context_from(listed) or self._props_context() or 4096)
        # (path, body builder) of the server's token-count endpoint, found at the first count
        self._counter: tuple[str, Any] | None = None if server_tokenizer else ("", None)
        self._count_overhead = 0
        self.last_generation = None

    # -- HTTP ------------------------------------------------------------------------------

    def _key(self) -> str | None:
        key = self._api_key
        if key is None and self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise LLMError(f"api_key_env={self.api_key_env!r} is given but that environment variable is empty")
        if key and not key.isprintable():
            raise LLMError("the API key holds a line break or another control character: check how it was pasted")
        return key or None

    @contextlib.contextmanager
    def _exchange(self, url: str, body: dict[str, Any] | None, seconds: float) -> Iterator[Response]:
        """One request and its response, all within ``seconds`` (raises :class:`Expired` past them)."""
        watchdog = Watchdog(seconds)
        raw = None
        try:
            raw = self._open(url, body, watchdog, timeout=min(self.timeout, max(seconds, 0.01)))
            yield Response(raw, url, watchdog, self._timeout_error)
        finally:
            watchdog.cancel()
            if raw is not None:
                raw.close()

    def _open(self, url: str, body: dict[str, Any] | None, watchdog: Watchdog, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream"})
        key = self._key()
        if key:  # "unredirected": never carried to a redirect's target by urllib itself
            request.add_unredirected_header("Authorization", f"Bearer {key}")
        try:
            return open_request(request, watchdog, timeout)
        except urllib.error.HTTPError as exc:
            try:
                raise self._http_error(url, exc) from None
            finally:
                exc.close()
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            if watchdog.over:
                raise Expired() from None
            if isinstance(exc, (http.client.HTTPException, ValueError)) and not isinstance(exc, ConnectionError):
                raise LLMError(f"{url} did not answer in HTTP ({clean(exc, 120) or type(exc).__name__}): is this "
                               f"the address of an OpenAI-compatible server?") from None
            raise self._connect_error(url, getattr(exc, "reason", exc)) from exc

    def _connect_error(self, url: str, reason: Any) -> LLMError:
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return self._timeout_error(url)
        if isinstance(reason, ConnectionRefusedError):
            return LLMError(f"cannot connect to {url}: connection refused. Is the server running? Start one with "
                            f"`{START_SERVER}`, or check the URL and port.")
        return LLMError(f"cannot reach {url}: {clean(reason, 200)}. Check the URL, and that the server is running "
                        f"(e.g. `{START_SERVER}`).")

    def _timeout_error(self, url: str) -> LLMError:
        return LLMTimeoutError(f"no answer from {url} within {self.timeout:g} s: the server is busy, stuck, or the "
                               f"model is slow to read the prompt. Check the server, or load it with a larger "
                               f"timeout=...")

    def _http_error(self, url: str, exc: urllib.error.HTTPError) -> LLMError:
        try:  # an error page can be huge: only the start is read, and only a line of it shown
            raw = exc.read(MAX_ERROR_BYTES)
        except (OSError, http.client.HTTPException, ValueError):
            raw = b""
        message = server_message(raw) if raw.strip() else ""
        hint = {401: "check api_key / api_key_env", 403: "check api_key / api_key_env",
                404: f"check the URL (it usually ends in /v1) and the model name {getattr(self, 'model', None)!r}",
                429: "the server is rate limiting: wait and retry"}.get(exc.code)
        if hint is None:
            hint = "see the server's log" if exc.code >= 500 else "the server rejected the request"
        return _HTTPStatusError(f"{url} answered HTTP {exc.code} {clean(exc.reason, 80)}: {message or '(no message)'} "
                                f"({hint})")

    def _info_seconds(self) -> float:
        """Time allowed for a small request (a model list, a token count): a timeout, within the deadline."""
        return min(self.timeout, self.deadline or math.inf)

    def _fetch_json(self, url: str, body: dict[str, Any] | None = None, seconds: float | None = None) -> Any:
        try:
            with self._exchange(url, body, self._info_seconds() if seconds is None else seconds) as response:
                raw = response.read(MAX_INFO_BYTES, "a response")
        except Expired:
            raise self._timeout_error(url) from None
        except Cut as cut:
            raise LLMError(f"{url}: the connection broke while the response was read ({cut}); "
                           f"check the server") from None
        return parse_json(raw, url)

    def _list_models(self, wanted: str | None) -> dict[str, Any]:
        url = f"{self.base_url}/models"
        payload = self._fetch_json(url)
        models = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise LLMError(f"{url} sent {clean(payload, 200)!r}, not a model list: is this an OpenAI-compatible "
                           f"API root?")
        for entry in models:
            if not isinstance(entry, dict) or (wanted is not None and entry.get("id") != wanted):
                continue
            name = entry.get("id")
            if not isinstance(name, str) or not name or len(name) > 512 or not name.isprintable():
                raise LLMError(f"{url} lists a model whose id is not a name ({clean(name, 80)!r}): "
                               f"pass model=... to choose one")
            return entry
        if wanted is not None:
            return {"id": wanted}  # servers may serve models they do not list
        raise LLMError(f"{url} lists no models: load one into the server, or pass model=...")

    def _props_context(self) -> int | None:
        """llama.cpp's server tells its context size at ``/props``; other servers have no such page."""
        url = f"{self._server_root()}/props"
        try:
            props = self._fetch_json(url, seconds=min(self._info_seconds(), 10.0))
            value = props["default_generation_settings"]["n_ctx"]
        except (LLMError, KeyError, TypeError):
            return None
        return _context_size(value)

    # -- the LLM interface -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """The server's own count when it offers one, else :func:`estimate_tokens` (on the high side)."""
        if self._counter is None:
            self._counter = self._find_counter()
        path, body = self._counter
        if not path:
            return estimate_tokens(text)
        return max(self._server_count(path, body(text)) - self._count_overhead, 0)

    @property
    def counts_exactly(self) -> bool:
        """Whether :meth:`count_tokens` uses the server's tokenizer (known after the first count)."""
        if self._counter is None:
            self._counter = self._find_counter()
        return bool(self._counter[0])

    def _server_root(self) -> str:
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def _server_count(self, url: str, body: dict[str, Any], seconds: float | None = None) -> int:
        try:
            payload = self._fetch_json(url, body, seconds)
        except _HTTPStatusError as exc:
            raise _NoCount(str(exc)) from None
        except NotJSON:
            raise _NoCount(f"{url} sent a token count that is not JSON") from None
        if isinstance(payload, dict) and _count(payload.get("count")) is not None:
            return payload["count"]
        if isinstance(payload, dict) and isinstance(payload.get("tokens"), list):
            return len(payload["tokens"])
        raise _NoCount(f"{url} sent {clean(payload, 200)!r}, not a token count")

    def _find_counter(self) -> tuple[str, Any]:
        """Probe the token-count endpoints servers offer; ``("", None)`` when none has one.

        A server that cannot be reached raises (it is needed anyway), so that a server
        restarting at the first count does not leave this model on estimates for good.
        """
        root, model = self._server_root(), self.model
        candidates = [
            (f"{root}/extras/tokenize/count", lambda t: {"input": t, "model": model}),        # llama-cpp-python
            (f"{root}/tokenize", lambda t: {"content": t}),                                  # llama.cpp server
            (f"{root}/tokenize", lambda t: {"model": model, "prompt": t, "add_special_tokens": False}),  # vLLM
        ]
        for url, body in candidates:
            try:
                self._count_overhead = self._server_count(url, body(""), min(self.timeout, 10.0))  # a BOS some servers add
                return url, body
            except _NoCount:
                continue
        return "", None

    def render(self, messages: str | Sequence[dict[str, Any]]) -> str:
        """A ChatML rendering: the server applies the model's real template, which this cannot see."""
        parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in normalize_messages(messages)]
        return "".join(parts) + "<|im_start|>assistant\n"

    def _body(self, messages: list[dict[str, str]], params: Params, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "seed": params.seed, "stream": stream}
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Generator[str, None, Usage]:
        url = f"{self.base_url}/chat/completions"
        try:  # the deadline runs from connecting, through the headers, to the last byte
            with self._exchange(url, self._body(messages, params, streaming), params.remaining()) as response:
                if streaming:
                    check_event_stream(response, url)
                    text, pieces, finish, usage, incomplete = yield from self._read_stream(response, url, params)
                else:
                    text, finish, usage = self._read_completion(response, url, params)
                    pieces, incomplete = None, ""
        except Expired:  # before any answer text (the stream reports its own)
            raise deadline_error(url, params.deadline or 0) from None
        if not streaming:
            yield text
        result = self._usage(usage, messages, text, pieces, finish)
        result.incomplete_reason = incomplete
        return result

    def _read_completion(self, response: Response, url: str, params: Params) -> tuple[str, str, Any]:
        """The answer of a non-streamed request: its JSON read up to a size that ``max_tokens`` justifies."""
        max_chars = _max_chars(params)
        # a JSON string may spell each character as a 12-byte surrogate pair ("\\ud83d\\ude00")
        try:
            raw = response.read(MB + 12 * max_chars, f"an answer for max_tokens={params.max_tokens}")
        except Cut as cut:
            raise LLMError(f"{url}: the connection broke while the answer was read ({cut}); check the server") from None
        payload = parse_json(raw, url)
        if isinstance(payload, dict) and payload.get("error") is not None:  # an error sent with status 200
            raise LLMError(f"{url} reported an error: {server_message(raw)}")
        try:
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"{url} sent JSON without choices[0].message: {clean(payload)}") from None
        if not isinstance(text, str):
            raise LLMError(f"{url} sent an answer whose content is not text: {clean(text, 100)}")
        finish = _finish(choice.get("finish_reason")) or "stop"
        if len(text) > max_chars:  # the server ignored max_tokens
            text, finish = text[:max_chars], "length"
        return text, finish, payload.get("usage")

    def _read_stream(self, response: Response, url: str, params: Params) -> Generator[str, None, tuple[str, int, str, Any, str]]:
        """Yield the streamed answer's pieces; return ``(text, pieces, finish, usage, incomplete_reason)``.

        Reading stops, with finish "length", once the server has sent more than ``max_tokens``
        justifies (in pieces or in characters), whatever it does with ``max_tokens`` itself.
        """
        events = EventStream(response, url, 8 * MB + STREAM_BYTES_PER_TOKEN * params.max_tokens,
                             expired=lambda: params.remaining() < 0)
        got = _Received()
        try:
            yield from self._keep(events, url, params, got)
        except Expired:
            raise deadline_error(url, params.deadline or 0, got.chars) from None
        text = "".join(got.parts)
        if got.capped:
            return text, min(got.pieces, params.max_tokens), "length", None, ""
        if events.end == "done" or got.finish is not None:
            return text, got.pieces, got.finish or "stop", got.usage, ""
        how = "closed the stream" if events.end == "closed" else f"broke the connection ({events.end})"
        if not text:
            raise LLMError(f"{url} {how} before sending any answer (no 'data: [DONE]', no finish_reason): see the "
                           f"server's log")
        return text, got.pieces, "incomplete", got.usage, (
            f"the server {how} after {len(text):,} characters, before the end of the answer "
            f"(no 'data: [DONE]', no finish_reason): the answer may be cut short")

    @staticmethod
    def _keep(events: EventStream, url: str, params: Params, got: "_Received") -> Iterator[str]:
        """Yield the answer text of each event into ``got``, returning once there is more than allowed."""
        max_chars, max_pieces = _max_chars(params), 2 * params.max_tokens + 16
        for event in events:
            if isinstance(event.get("usage"), dict):
                got.usage = event["usage"]
            for piece, finish in _deltas(event, url):
                got.finish = finish or got.finish
                if not piece:
                    continue
                kept = piece[: max_chars - got.chars] if got.pieces < max_pieces else ""
                if kept:
                    got.pieces += 1
                    got.chars += len(kept)
                    got.parts.append(kept)
                    yield kept
                if len(kept) < len(piece):  # the server sends past max_tokens: stop reading
                    got.capped = True
                    return

    def _usage(self, usage: Any, messages: list[dict[str, str]], text: str, pieces: int | None, finish: str) -> Usage:
        usage = usage if isinstance(usage, dict) else {}
        prompt = _count(usage.get("prompt_tokens"))
        answer = _count(usage.get("completion_tokens"))
        if prompt is None:
            prompt = self.count_tokens(self.render(messages))
        if answer is None:  # servers send about one chunk per token
            answer = pieces if pieces is not None else self.count_tokens(text)
        return Usage(prompt, answer, finish)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "model": self.model, "url": self.base_url, "name": self.name,
                               "sha256": {}, "timeout": self.timeout, "context_window": self.context_window}
        if self.api_key_env:
            out["api_key_env"] = self.api_key_env
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "url": self.base_url, "model": self.model, "timeout": self.timeout,
                "deadline": self.deadline}


@dataclass
class _Received:
    """What a stream has given so far."""

    parts: list[str] = field(default_factory=list)
    pieces: int = 0
    chars: int = 0
    finish: str | None = None
    usage: Any = None
    capped: bool = False  # stopped for sending more than max_tokens allows


def _deltas(event: dict[str, Any], url: str) -> Iterator[tuple[str, str | None]]:
    """``(text, finish_reason)`` of each choice in a chat-completion chunk, checked."""
    choices = event.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise LLMError(f"{url} streamed a chunk whose choices are not a list of objects: {clean(event, 200)}")
    for choice in choices:
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        if piece is not None and not isinstance(piece, str):
            raise LLMError(f"{url} streamed a chunk whose content is not text: {clean(piece, 100)}")
        yield piece or "", _finish(choice.get("finish_reason"))


def _max_chars(params: Params) -> int:
    """The most answer text kept for ``params.max_tokens`` (see CHARS_PER_TOKEN)."""
    return SLACK_CHARS + CHARS_PER_TOKEN * params.max_tokens


def _context_size(value: Any) -> int | None:
    """A context size a server reported, if it is a plausible one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 100_000_000:
        return value
    return None


def _context_from(entry: dict[str, Any]) -> int | None:
    """The context size a server reports in ``/models`` (vLLM: max_model_len; llama.cpp: meta.n_ctx_train)."""
    for key in ("max_model_len", "context_length", "context_window", "n_ctx"):
        if _context_size(entry.get(key)):
            return entry[key]
    meta = entry.get("meta")
    if isinstance(meta, dict):
        for key in ("n_ctx", "n_ctx_train"):
            if _context_size(meta.get(key)):
                return meta[key]
    return None


