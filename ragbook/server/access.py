"""Who may ask, and how often: class tokens compared in constant time, and a rate limit per token.

A teacher shares one token with a class (or one per group, each with a label that the question
log and the stats show instead of any student identity).  The teacher's own token opens the
stats page.  Limits are per token, so one group cannot use up another's share of the model.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ragbook.errors import SettingsError

__all__ = ["Tokens", "RateLimit", "parse_rate", "new_token"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_LABEL = re.compile(r"^[\w.@+-]{1,64}$")


def new_token() -> str:
    """A random token for a class link: 128 bits, URL-safe."""
    return secrets.token_urlsafe(16)


def parse_rate(text: str) -> tuple[float, float]:
    """``"30/min"`` -> ``(30, 60.0)``: so many requests per so many seconds."""
    m = _RATE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise SettingsError(f"a rate limit reads like 30/min, 5/s or 200/hour, not {text!r}")
    return float(m.group(1)), float(_SECONDS[m.group(2).lower()])


class Tokens:
    """The class tokens, each with a label; ``label(token)`` compares against all of them in constant time."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self._by_label: dict[str, bytes] = {}
        for label, token in (tokens or {}).items():
            self.add(label, token)

    def add(self, label: str, token: str) -> None:
        if not _LABEL.match(label):
            raise SettingsError(f"a token label is 1-64 letters, digits or . _ @ + -, not {label!r}")
        if len(token) < 8 or any(c.isspace() for c in token):
            raise SettingsError(f"the token for {label!r} is too short or has spaces: use 8 or more characters "
                                "(ragbook serve makes a random one when none is given)")
        self._by_label[label] = token.encode("utf-8")

    @classmethod
    def from_file(cls, path: str | Path) -> Tokens:
        """One ``label token`` pair a line (``#`` starts a comment): one token per section, group or course."""
        tokens = cls()
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise SettingsError(f"{Path(path).name}, line {number}: expected 'label token', got {len(parts)} words")
            tokens.add(parts[0], parts[1])
        if not tokens:
            raise SettingsError(f"{Path(path).name} holds no 'label token' line")
        return tokens

    def label(self, token: str | None) -> str | None:
        """The label of ``token``, or None.  Every stored token is compared, each in constant time."""
        if not token:
            return None
        given = token.encode("utf-8", "replace")
        found = None
        for label, known in self._by_label.items():
            if hmac.compare_digest(given, known):
                found = label
        return found

    def __len__(self) -> int:
        return len(self._by_label)

    def __repr__(self) -> str:  # never the tokens themselves
        return f"Tokens(labels={sorted(self._by_label)})"


@dataclass
class RateLimit:
    """A token bucket per key (a token's label, a client's address): ``requests`` per ``seconds``, bursts up to
    ``requests``.  At most ``max_keys`` buckets are kept, the least recently used dropped first."""

    requests: float
    seconds: float
    max_keys: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        return cls(*parse_rate(text))

    def take(self, label: str) -> float:
        """0 when ``label`` may go ahead (one request counted), else the seconds until it may."""
        rate = self.requests / self.seconds
        now = time.monotonic()
        with self._lock:
            level, then = self._buckets.get(label, (self.requests, now))
            level = min(self.requests, level + (now - then) * rate)
            if level >= 1:
                self._buckets[label] = (level - 1, now)
                self._buckets.move_to_end(label)
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
                return 0.0
            self._buckets[label] = (level, now)
            self._buckets.move_to_end(label)
            return max(1.0, math.ceil((1 - level) / rate))
