"""Any server that speaks OpenAI's chat-completions API: llama.cpp's server, llama-cpp-python's
``python -m llama_cpp.server``, vLLM, Ollama, LM Studio, or OpenAI itself.

Standard library only (``urllib``): no client package to install.  The key is sent only when
given: ``api_key="..."`` (kept out of :meth:`OpenAILLM.info`) or ``api_key_env="NAME"`` (the
variable's name is recorded, its value read at each request).  ``OPENAI_API_KEY`` is *not*
read on its own: pointing ragbook at a local server must never send someone's OpenAI key to it.

``timeout`` bounds connecting and each wait for more bytes, so a long answer that keeps
streaming is fine, and a server that stops answering fails after ``timeout`` seconds.

The server applies the model's chat template, so this client cannot know the exact prompt:
:meth:`OpenAILLM.render` gives a ChatML rendering.  :meth:`OpenAILLM.count_tokens` asks the
server's own tokenizer when it has an endpoint for it (llama-cpp-python
``/extras/tokenize/count``, llama.cpp and vLLM ``/tokenize``), and otherwise falls back to a
deliberately high estimate (:func:`estimate_tokens`).  The counts in a :class:`Generation`
are the server's own when it reports ``usage``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import urllib.error
import urllib.request
from typing import Any, Iterator, Sequence

from ragbook.llm.base import LLM, LLMError, Params, Usage, normalize_messages

__all__ = ["OpenAILLM", "estimate_tokens"]

START_SERVER = "python -m llama_cpp.server --model MODEL.gguf --host 127.0.0.1 --port 8000"


class _NoCount(LLMError):
    """The server answered, but not with a token count: it has no such endpoint."""


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


class OpenAILLM(LLM):
    """A model behind an OpenAI-compatible HTTP server.

    ``base_url`` is the API root (``http://127.0.0.1:8000/v1``).  Without ``model`` the first
    model the server lists is used (llama.cpp servers serve one).  ``context_window`` is the
    server's context size when it says so (vLLM in ``/models``, llama.cpp in ``/props``), else
    4096: give it for other servers (llama-cpp-python's is its ``--n_ctx``).
    """

    backend = "openai"

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, timeout: float = 60.0, context_window: int | None = None,
                 name: str | None = None, server_tokenizer: bool = True) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise LLMError(f"{base_url!r} is not an http(s) URL; try 'http://127.0.0.1:8000/v1'")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
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

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        key = self._api_key
        if key is None and self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise LLMError(f"api_key_env={self.api_key_env!r} is given but that environment variable is empty")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _open(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers=self._headers(), method="GET" if body is None else "POST")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(url, exc) from None
        except urllib.error.URLError as exc:
            raise self._connect_error(url, exc.reason) from exc
        except (TimeoutError, socket.timeout) as exc:
            raise self._timeout_error(url) from exc
        except (ConnectionError, OSError) as exc:
            raise self._connect_error(url, exc) from exc

    def _connect_error(self, url: str, reason: Any) -> LLMError:
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return self._timeout_error(url)
        if isinstance(reason, ConnectionRefusedError):
            return LLMError(f"cannot connect to {url}: connection refused. Is the server running? Start one with "
                            f"`{START_SERVER}`, or check the URL and port.")
        return LLMError(f"cannot reach {url}: {reason}. Check the URL, and that the server is running "
                        f"(e.g. `{START_SERVER}`).")

    def _timeout_error(self, url: str) -> LLMError:
        return LLMError(f"no answer from {url} within {self.timeout:g} s: the server is busy, stuck, or the model "
                        f"is slow to read the prompt. Check the server, or load it with a larger timeout=...")

    def _http_error(self, url: str, exc: urllib.error.HTTPError) -> LLMError:
        try:
            raw = exc.read().decode("utf-8", "replace")
        except OSError:
            raw = ""
        message = raw.strip()[:500]
        try:
            payload = json.loads(raw)
            err = payload.get("error", payload.get("detail", payload)) if isinstance(payload, dict) else payload
            message = err.get("message", json.dumps(err)) if isinstance(err, dict) else str(err)
        except ValueError:
            pass
        hint = {401: "check api_key / api_key_env", 403: "check api_key / api_key_env",
                404: f"check the URL (it usually ends in /v1) and the model name {getattr(self, 'model', None)!r}",
                429: "the server is rate limiting: wait and retry"}.get(exc.code)
        if hint is None:
            hint = "see the server's log" if exc.code >= 500 else "the server rejected the request"
        return LLMError(f"{url} answered HTTP {exc.code} {exc.reason}: {message or '(no message)'} ({hint})")

    def _read_json(self, response: Any, url: str) -> Any:
        try:
            raw = response.read()
        except (TimeoutError, socket.timeout) as exc:
            raise self._timeout_error(url) from exc
        finally:
            response.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise LLMError(f"{url} sent a response that is not JSON: {raw[:200]!r}. Is this an OpenAI-compatible "
                           f"API root (usually ending in /v1)?") from None

    def _list_models(self, wanted: str | None) -> dict[str, Any]:
        url = f"{self.base_url}/models"
        payload = self._read_json(self._open("/models"), url)
        models = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise LLMError(f"{url} sent {str(payload)[:200]!r}, not a model list: is this an OpenAI-compatible API root?")
        for entry in models:
            if isinstance(entry, dict) and (wanted is None or entry.get("id") == wanted):
                return entry
        if wanted is not None:
            return {"id": wanted}  # servers may serve models they do not list
        raise LLMError(f"{url} lists no models: load one into the server, or pass model=...")

    def _props_context(self) -> int | None:
        """llama.cpp's server tells its context size at ``/props``; other servers have no such page."""
        url = f"{self._server_root()}/props"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=self._headers()),
                                        timeout=min(self.timeout, 10.0)) as response:
                props = json.loads(response.read())
            value = props["default_generation_settings"]["n_ctx"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return value if isinstance(value, int) and value > 0 else None

    # -- the LLM interface -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """The server's own count when it offers one, else :func:`estimate_tokens` (on the high side)."""
        if self._counter is None:
            self._counter = self._find_counter()
        path, body = self._counter
        if not path:
            return estimate_tokens(text)
        return self._server_count(path, body(text)) - self._count_overhead

    @property
    def counts_exactly(self) -> bool:
        """Whether :meth:`count_tokens` uses the server's tokenizer (known after the first count)."""
        if self._counter is None:
            self._counter = self._find_counter()
        return bool(self._counter[0])

    def _server_root(self) -> str:
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def _server_count(self, url: str, body: dict[str, Any], timeout: float | None = None) -> int:
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _NoCount(str(self._http_error(url, exc))) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._connect_error(url, getattr(exc, "reason", exc)) from exc
        except ValueError:
            raise _NoCount(f"{url} sent a token count that is not JSON") from None
        if isinstance(payload, dict) and isinstance(payload.get("count"), int):
            return payload["count"]
        if isinstance(payload, dict) and isinstance(payload.get("tokens"), list):
            return len(payload["tokens"])
        raise _NoCount(f"{url} sent {str(payload)[:200]!r}, not a token count")

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

    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Iterator[str]:
        url = f"{self.base_url}/chat/completions"
        response = self._open("/chat/completions", self._body(messages, params, streaming))
        if not streaming:
            payload = self._read_json(response, url)
            try:
                choice = payload["choices"][0]
                text = choice["message"].get("content") or ""
                finish = choice.get("finish_reason") or "stop"
            except (KeyError, IndexError, TypeError, AttributeError):
                raise LLMError(f"{url} sent JSON without choices[0].message: {str(payload)[:300]}") from None
            yield text
            return self._usage(payload.get("usage"), messages, text, None, finish)
        pieces, finish, usage = 0, "stop", None
        text_parts: list[str] = []
        try:
            for event in _sse_events(response, url, self._timeout_error):
                if "error" in event:
                    err = event["error"]
                    raise LLMError(f"{url} reported an error while streaming: {err.get('message', err) if isinstance(err, dict) else err}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        pieces += 1
                        text_parts.append(piece)
                        yield piece
                    finish = choice.get("finish_reason") or finish
        finally:
            response.close()
        return self._usage(usage, messages, "".join(text_parts), pieces, finish)

    def _usage(self, usage: Any, messages: list[dict[str, str]], text: str, pieces: int | None, finish: str) -> Usage:
        usage = usage if isinstance(usage, dict) else {}
        prompt = usage.get("prompt_tokens")
        answer = usage.get("completion_tokens")
        if not isinstance(prompt, int):
            prompt = self.count_tokens(self.render(messages))
        if not isinstance(answer, int):  # servers send about one chunk per token
            answer = pieces if pieces is not None else self.count_tokens(text)
        return Usage(prompt, answer, finish)

    def info(self) -> dict[str, Any]:
        out = {"backend": self.backend, "model": self.model, "url": self.base_url, "name": self.name,
               "sha256": {}, "timeout": self.timeout, "context_window": self.context_window}
        if self.api_key_env:
            out["api_key_env"] = self.api_key_env
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "url": self.base_url, "model": self.model, "timeout": self.timeout}


def _context_from(entry: dict[str, Any]) -> int | None:
    """The context size a server reports in ``/models`` (vLLM: max_model_len; llama.cpp: meta.n_ctx_train)."""
    for key in ("max_model_len", "context_length", "context_window", "n_ctx"):
        if isinstance(entry.get(key), int):
            return entry[key]
    meta = entry.get("meta")
    if isinstance(meta, dict):
        for key in ("n_ctx", "n_ctx_train"):
            if isinstance(meta.get(key), int):
                return meta[key]
    return None


def _sse_events(response: Any, url: str, timeout_error: Any) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent-events stream, until ``data: [DONE]`` or the end."""
    data: list[str] = []
    while True:
        try:
            raw = response.readline()
        except (TimeoutError, socket.timeout) as exc:
            raise timeout_error(url) from exc
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
            continue
        if line or not data:  # comments (":"), "event:", "id:", or blank lines between events
            continue
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            raise LLMError(f"{url} streamed an event that is not JSON: {payload[:200]!r}") from None
        if not isinstance(event, dict):
            raise LLMError(f"{url} streamed {payload[:200]!r}, not a chat-completion chunk")
        yield event
    if data and "".join(data).strip() not in ("", "[DONE]"):
        try:
            yield json.loads("\n".join(data))
        except ValueError:
            raise LLMError(f"{url} streamed an event that is not JSON: {data[0][:200]!r}") from None
