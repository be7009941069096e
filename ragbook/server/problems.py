"""How the server says no: :class:`HTTPProblem` (a status, a message, a Retry-After), and the scrubbing
that keeps the server's own paths out of every message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["HTTPProblem", "scrub", "ABSOLUTE_PATH", "PAGE_POLICY"]

# the student page runs its own inline script and talks to its own server only
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
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


def scrub(text: str) -> str:
    """``text`` with any absolute filesystem path cut to its last part: no server path leaves the server."""
    return ABSOLUTE_PATH.sub(lambda m: Path(m.group(0).rstrip("/\\").replace("\\", "/")).name or "…", str(text))
