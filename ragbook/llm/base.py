"""What every language-model backend shares: the :class:`LLM` interface, :class:`Generation`, errors.

A backend subclasses :class:`LLM` and writes three things: ``count_tokens``, ``render`` (the
exact prompt text after the chat template) and ``_generate``, a generator that yields the
answer's text pieces and *returns* a :class:`Usage`.  The base class turns that into both
``chat`` (one :class:`Generation`) and ``stream`` (text pieces, then ``last_generation``), so
that timings, validation and the two call shapes behave the same on every backend.

A deadline bounds the whole answer (``llm.deadline``, or ``deadline=`` per call): the base class
checks it between pieces, and a backend that can wait without producing pieces (a server sending
keep-alives) checks :meth:`Params.remaining` itself.  Past it, :class:`LLMTimeoutError`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Generator, Iterator, Protocol, Sequence, runtime_checkable

from ragbook._display import html_escape, html_table, shorten
from ragbook.errors import LLMError, LLMTimeoutError, SettingsError

__all__ = ["LLM", "Generation", "LLMError", "LLMTimeoutError", "Usage", "Params", "normalize_messages", "StopTrimmer",
           "physical_cores", "check_deadline", "deadline_error"]

ROLES = ("system", "user", "assistant")


def check_deadline(deadline: Any) -> float | None:
    """``deadline`` as seconds (a positive number), or ``None`` for no limit."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0 or math.isnan(deadline):
        raise SettingsError(f"deadline must be a number of seconds > 0 (or None for no limit), not {deadline!r}")
    return float(deadline)


def deadline_error(name: str, seconds: float, received: int = 0) -> LLMTimeoutError:
    """The error for an answer not finished in time; it says how to allow more."""
    got = f" (stopped after {received:,} characters)" if received else ""
    return LLMTimeoutError(
        f"{name} gave no complete answer within {seconds:g} s (deadline={seconds:g}){got}: the model is slow, or "
        f"the server is stuck or keeps the answer going. Raise it with load_llm(..., deadline=...) or "
        f"llm.deadline = ..., or pass deadline= to chat()/stream()."
    )


@dataclass
class Generation:
    """One answer and what it cost.

    ``first_token_s`` is the time until the first piece of the answer was produced (local
    backends) or received (``openai``; without streaming that is the whole answer, so it
    equals ``total_s``).  ``finish_reason`` is ``"stop"`` (the model ended, or a stop string
    was met) or ``"length"`` (``max_tokens`` or the context window ran out); after a stream
    that was stopped early it is ``"cancelled"`` (``"error"`` if the backend failed), and the
    token counts, then unknown, are -1.  ``incomplete`` is True when the answer was cut off
    by something other than the model (a server that closed its stream before the end);
    ``finish_reason`` is then ``"incomplete"`` and ``incomplete_reason`` says what happened.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float
    total_s: float
    model: str
    finish_reason: str
    incomplete: bool = False
    incomplete_reason: str = ""

    @property
    def tokens_per_s(self) -> float:
        """Decoding speed: answer tokens after the first, per second after the first token."""
        decode = self.total_s - self.first_token_s
        if self.completion_tokens <= 1 or decode <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (
            f"Generation(text={shorten(self.text, 60)!r}, prompt_tokens={self.prompt_tokens}, "
            f"completion_tokens={self.completion_tokens}, first_token_s={self.first_token_s:.2f}, "
            f"total_s={self.total_s:.2f}, tokens_per_s={self.tokens_per_s:.1f}, model={self.model!r}, "
            f"finish_reason={self.finish_reason!r}"
            + (f", incomplete_reason={shorten(self.incomplete_reason, 80)!r})" if self.incomplete else ")")
        )

    def _repr_html_(self) -> str:
        stats = (
            f"{self.prompt_tokens} prompt + {self.completion_tokens} answer tokens · first token "
            f"{self.first_token_s:.2f} s · total {self.total_s:.2f} s · {self.tokens_per_s:.1f} tok/s · "
            f"{self.model} · {self.finish_reason}"
        )
        warning = (f"<div style='color:#b00020'>incomplete: {html_escape(self.incomplete_reason)}</div>"
                   if self.incomplete else "")
        return (
            "<div class='ragbook-generation'>"
            f"<div style='white-space:pre-wrap'>{html_escape(self.text)}</div>{warning}"
            f"<div><small>{html_escape(stats)}</small></div></div>"
        )


@dataclass
class Usage:
    """What a backend's ``_generate`` returns once its pieces are exhausted."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    first_token_s: float | None = None  # when the backend knows better than "first piece seen"
    incomplete_reason: str = ""  # set when the answer was cut off by something other than the model


@dataclass(frozen=True)
class Params:
    """Validated generation settings, as the backends receive them.

    ``deadline`` is the seconds the whole answer may take (``None``: no limit); ``started`` is
    the :func:`time.monotonic` time the answer began, set when the generation starts.
    """

    max_tokens: int = 512
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    deadline: float | None = None
    started: float | None = None

    def remaining(self) -> float:
        """Seconds left before the deadline (``inf`` without one); negative once it has passed."""
        if self.deadline is None:
            return math.inf
        started = time.monotonic() if self.started is None else self.started
        return started + self.deadline - time.monotonic()

    @classmethod
    def make(cls, max_tokens: int, temperature: float, stop: str | Sequence[str] | None, seed: int | None,
             deadline: float | None = None) -> "Params":
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise SettingsError(f"max_tokens must be a positive integer, not {max_tokens!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise SettingsError(f"temperature must be a number >= 0, not {temperature!r}")
        if stop is None:
            stops: tuple[str, ...] = ()
        elif isinstance(stop, str):
            stops = (stop,)
        else:
            stops = tuple(stop)
        if not all(isinstance(s, str) and s for s in stops):
            raise SettingsError(f"stop must be a string or a list of non-empty strings, not {stop!r}")
        return cls(max_tokens=max_tokens, temperature=float(temperature), stop=stops, seed=int(seed or 0),
                   deadline=check_deadline(deadline))


def normalize_messages(messages: str | Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts, checked; a bare string is one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence) or not messages:
        raise SettingsError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise SettingsError(f"message {i} must be a dict with 'role' and 'content', not {m!r}")
        if m["role"] not in ROLES:
            raise SettingsError(f"message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise SettingsError(f"message {i} content must be a string, not {type(m['content']).__name__}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def check_hashes(recorded: dict[str, str], actual: dict[str, str], where: Path) -> None:
    """Refuse weights whose sha256 differ from the ones recorded when the model was saved."""
    if recorded == actual:
        return
    changed = sorted(set(recorded) ^ set(actual) | {k for k in recorded if k in actual and recorded[k] != actual[k]})
    raise LLMError(f"the weights in {where} are not the recorded ones (sha256 differs for: {', '.join(changed)}): "
                   f"the model was changed or retrained since it was saved; load it by path to accept the new weights.")


@runtime_checkable
class ChatModel(Protocol):
    """What an assistant needs from a language model (every :class:`LLM` is one; so is a stand-in with these)."""

    name: str
    context_window: int

    def chat(self, messages: Any, *, max_tokens: int = ..., temperature: float = ...) -> Any: ...

    def stream(self, messages: Any, *, max_tokens: int = ..., temperature: float = ...) -> Iterator[str]: ...

    def render(self, messages: Any) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def info(self) -> dict[str, Any]: ...


class LLM(ABC):
    """A chat model: the one call shape ragbook's assistant uses, whatever runs the model.

    >>> llm = load_llm("smollm2-135m")
    >>> llm.chat([{"role": "user", "content": "Say hi"}], max_tokens=8).text
    """

    name: str = ""
    backend: str = ""
    context_window: int = 0
    deadline: float | None = None  # seconds an answer may take; None: no limit (see check_deadline)
    _context_kwarg = "context_window"  # the load_llm keyword that sets the context size

    # -- what a backend writes -----------------------------------------------------------------

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt."""

    @abstractmethod
    def render(self, messages: str | Sequence[dict[str, Any]]) -> str:
        """The prompt text the model reads for ``messages``, chat template applied."""

    @abstractmethod
    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Generator[str, None, Usage]:
        """Yield the answer's text pieces; ``return`` a :class:`Usage` at the end.

        ``streaming`` is False for :meth:`chat`: a backend may then produce the answer in one
        go (no thread, no server-sent events) and yield it whole, reporting ``first_token_s``.
        """

    # how load_llm finds this backend: "<prefix>rest" strings (e.g. "openai:" + URL), and its info()'s "backend"
    prefix: str = ""

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> LLM:
        """The model a ``load_llm`` string with this backend's ``prefix`` names."""
        return cls(spec, **kwargs)  # type: ignore[call-arg]  # every backend takes its model first

    @classmethod
    def from_info(cls, info: dict[str, Any], **kwargs: Any) -> LLM:
        """The model an ``info()`` dict of this backend describes (its files' sha256 checked)."""
        raise LLMError(f"the {cls.backend} backend cannot be loaded from a saved description")

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """A JSON-serialisable reference that :func:`ragbook.llm.load_llm` turns back into this model."""

    @property
    def last_generation(self) -> Generation | None:
        """The totals of the last answer made in this thread: each thread has its own, so a server answering
        several questions at once (``ragbook serve --parallel``) reads each answer's own."""
        return getattr(self._thread_state(), "generation", None)

    @last_generation.setter
    def last_generation(self, value: Generation | None) -> None:
        self._thread_state().generation = value

    def _thread_state(self) -> threading.local:
        state = self.__dict__.get("_thread_local")
        if state is None:
            state = self.__dict__.setdefault("_thread_local", threading.local())
        return state

    def close(self) -> None:  # noqa: B027 - optional for subclasses: only local backends hold memory
        """Free the model's memory now rather than at garbage collection (local backends)."""

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def settings(self) -> dict[str, Any]:
        """The few settings worth showing in ``repr``; backends add theirs."""
        return {"name": self.name, "backend": self.backend, "context_window": self.context_window}

    # -- the public calls ----------------------------------------------------------------------

    def chat(self, messages: str | Sequence[dict[str, Any]], *, max_tokens: int = 512, temperature: float = 0.0,
             stop: str | Sequence[str] | None = None, seed: int = 0, deadline: float | None = None) -> Generation:
        """The model's answer to ``messages`` (``{"role", "content"}`` dicts, or one user string).

        ``deadline`` (seconds) overrides ``self.deadline`` for this answer.
        """
        msgs = normalize_messages(messages)
        params = Params.make(max_tokens, temperature, stop, seed, self.deadline if deadline is None else deadline)
        return self._chat(msgs, params)

    def stream(self, messages: str | Sequence[dict[str, Any]], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: str | Sequence[str] | None = None, seed: int = 0, deadline: float | None = None) -> Iterator[str]:
        """The answer as text pieces while it is generated; then ``self.last_generation`` has the totals.

        Stopping early (``break``) stops the generation; ``last_generation`` then describes the
        part that was produced.  The deadline counts from the first ``next()``.
        """
        msgs = normalize_messages(messages)  # checked now, not at the first next()
        params = Params.make(max_tokens, temperature, stop, seed, self.deadline if deadline is None else deadline)
        return self._run(msgs, params, streaming=True)

    def _chat(self, messages: list[dict[str, str]], params: Params) -> Generation:
        for _ in self._run(messages, params, streaming=False):
            pass
        assert self.last_generation is not None
        return self.last_generation

    def _run(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Iterator[str]:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        params = replace(params, started=time.monotonic())
        gen = self._generate(messages, params, streaming)
        failed = False
        try:
            while True:
                try:
                    piece = next(gen)
                except StopIteration as done:
                    usage = done.value
                    break
                if params.remaining() < 0:  # between pieces: a slow model, or a server that drips
                    raise deadline_error(self.name, params.deadline or 0, sum(map(len, parts)))
                if not piece:
                    continue
                if first is None:
                    first = time.perf_counter() - start
                parts.append(piece)
                yield piece
        except BaseException as exc:
            failed = not isinstance(exc, GeneratorExit)
            raise
        finally:
            gen.close()
            total = time.perf_counter() - start
            text = "".join(parts)
            if usage is None:  # the caller stopped early, or the backend failed
                usage = Usage(-1, -1, "error" if failed else "cancelled")
            if usage.first_token_s is not None:
                first = usage.first_token_s
            self.last_generation = Generation(
                text=text,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                first_token_s=round(first if first is not None else total, 6),
                total_s=round(total, 6),
                model=self.name,
                finish_reason=usage.finish_reason,
                incomplete=bool(usage.incomplete_reason),
                incomplete_reason=usage.incomplete_reason,
            )

    def _check_fits(self, prompt_tokens: int, params: Params) -> int:
        """The ``max_tokens`` that fits after the prompt; a clear error when the prompt alone does not."""
        room = self.context_window - prompt_tokens
        if room < 1:
            raise LLMError(
                f"the prompt has {prompt_tokens} tokens but {self.name} reads at most {self.context_window} "
                f"(prompt + answer): retrieve fewer or shorter passages, or load the model with a larger "
                f"context (load_llm(..., {self._context_kwarg}=...)) if it was trained for one."
            )
        return min(params.max_tokens, room)

    # -- display -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if v is not None)
        return f"{type(self).__name__}({items})"

    def _repr_html_(self) -> str:
        rows = [[k, v] for k, v in self.settings().items() if v is not None]
        return f"<div class='ragbook-llm'><b>{html_escape(type(self).__name__)}</b>{html_table(['setting', 'value'], rows)}</div>"


class StopTrimmer:
    """Cuts streamed text at the first stop string, holding back what could be the start of one.

    >>> t = StopTrimmer(["\\nQ:"]); t.feed("yes\\n"), t.feed("Q: more")
    (('yes', False), ('', True))
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """``(text safe to emit now, stop met)``."""
        if self.stopped:
            return "", True
        if not self.stops:
            return piece, False
        self.buffer += piece
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
            return out, True
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.buffer)), 0, -1):
                if self.buffer.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads slow llama.cpp down, not up)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        phys = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key and core:
                    cores.add((phys, core))
                    phys = core = ""
        if core:
            cores.add((phys, core))
    except OSError:
        pass
    return max(1, min(usable, len(cores) if cores else usable))


def is_loopback(host: str) -> bool:
    return host in {"localhost", "127.0.0.1", "::1", "[::1]"} or host.startswith("127.")
