"""How the server says no: :class:`HTTPProblem` (a status, a message, a Retry-After), and the scrubbing
that keeps the server's own paths out of every message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

__all__ = ["HTTPProblem", "scrub", "ABSOLUTE_PATH", "PAGE_POLICY"]

# the student page runs its own inline script and talks to its own server only
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_FILE_URL = re.compile(r"file://(\S+)", re.IGNORECASE)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"<>:]+){2,}/?|[A-Za-z]:\\(?:[^\s\\'\"<>]+\\?)+")


class HTTPProblem(Exception):
    """A request the server refuses: the status, a message for the person, and headers such as Retry-After."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.retry_after = status, message, kind, retry_after

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "status": self.status, "code": self.status}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def scrub(text: str, known: Sequence[str] = ()) -> str:
    """``text`` with no filesystem path of the server in it.

    ``known`` folders (the documents' roots, the home and working folders) go first, whole, so a
    name with spaces in it goes too; then ``file://`` addresses and anything else shaped like an
    absolute path are cut to their last part.
    """
    text = str(text)
    for folder in sorted((f.rstrip("/\\") for f in known if f and len(f.rstrip("/\\")) > 1), key=len, reverse=True):
        text = text.replace(folder + "/", "").replace(folder + "\\", "").replace(folder, "\u2026")
    text = _FILE_URL.sub(lambda m: Path(m.group(1)).name or "\u2026", text)
    return ABSOLUTE_PATH.sub(lambda m: Path(m.group(0).rstrip("/\\").replace("\\", "/")).name or "\u2026", text)
