"""What every panel shares: a status line, errors shown in the panel, safe upload names."""

from __future__ import annotations

import functools
import logging
import re
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w

from ragbook._display import html_escape
from ragbook.errors import SettingsError

log = logging.getLogger("ragbook.widgets")

# Tests set this: an exception that is not a user's mistake is re-raised from a callback
# instead of shown in the panel, so that a bug fails the test.
STRICT = False


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "bad input or environment", shown to the user as a message."""
    from ragbook.embedding import ModelNotFoundError
    from ragbook.llm.base import LLMError

    return (ValueError, OSError, LLMError, ModelNotFoundError, ImportError, KeyError)


class Panel(w.VBox):
    """A VBox with a status line; callbacks wrapped by :func:`guarded` report errors there."""

    title = "panel"

    def __init__(self, children: list[w.Widget], **kwargs: Any) -> None:
        self.status = w.HTML(layout=w.Layout(min_height="1.6em"))
        self.errors: list[BaseException] = []
        super().__init__([*children, self.status], **kwargs)
        self.add_class("ragbook-panel")

    @property
    def error(self) -> str:
        """The error message on show, or ``""``."""
        return self._error_text if getattr(self, "_error_text", "") else ""

    def say(self, text: str, *, busy: bool = False) -> None:
        self._error_text = ""
        icon = "&#8987; " if busy else ""
        self.status.value = f"<span style='color:#555'>{icon}{html_escape(text)}</span>"

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self._error_text = f"{type(exc).__name__}: {exc}"
        self.status.value = (f"<div style='color:#b00020;white-space:pre-wrap'><b>{html_escape(type(exc).__name__)}</b>: "
                             f"{html_escape(str(exc))}</div>")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a callback; show an exception in the panel's status line instead of a traceback."""

    @functools.wraps(method)
    def wrapper(self: Panel, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if STRICT and not isinstance(exc, user_errors()):
                raise
            log.debug("panel callback failed", exc_info=True)
            self.fail(exc)
            return None

    return wrapper


class Throttle:
    """Call ``fn`` at most every ``interval`` seconds (the last call always goes through on ``flush``)."""

    def __init__(self, fn: Callable[..., None], interval: float = 0.08) -> None:
        self.fn, self.interval, self._last = fn, interval, 0.0
        self._pending: tuple[Any, ...] | None = None

    def __call__(self, *args: Any) -> None:
        self._pending = args
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is not None:
            self._last = time.monotonic()
            args, self._pending = self._pending, None
            self.fn(*args)


_UNSAFE = re.compile(r"[^\w.\- ()]+")


def safe_filename(name: str) -> str:
    """A plain file name for an uploaded file: no folders, no control characters, no leading dots.

    Raises ValueError when nothing usable is left.
    """
    base = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base or base.strip("_") == "":
        raise SettingsError(f"the upload name {name!r} is not a usable file name; rename the file and upload it again")
    return base[:200]


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing anything that would land outside ``folder``."""
    target = (folder / name).resolve()
    if folder.resolve() not in target.parents:
        raise SettingsError(f"the upload name {name!r} leaves the upload folder; rename the file")
    return target


def card(title: str, body_html: str, *, colour: str = "#1a5fb4") -> str:
    return (f"<div style='border-left:3px solid {colour};padding:2px 8px;margin:4px 0'>"
            f"<div><b>{html_escape(title)}</b></div>{body_html}</div>")
