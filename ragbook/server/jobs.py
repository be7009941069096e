"""One language model for a whole class: questions wait in a bounded line for a few workers.

Each question is a :class:`Job`.  Worker threads take jobs in order and run them; what a job
produces (its place in line, the stages, the answer's text pieces, the checked answer or an
error) goes to the asyncio queue of the request that asked, so every client is streamed to on
its own and a slow reader never holds up the model.  A job whose client has gone is skipped,
or stopped at its next text piece.

``parallel`` workers share one model object: 1 for an in-process model (llama.cpp and
transformers answer one prompt at a time; the prefix cache makes the next one start sooner),
more for an OpenAI-compatible server such as vLLM, which batches the requests itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from typing import Any, Callable

__all__ = ["Job", "JobLine", "LineFull"]

log = logging.getLogger(__name__)


class LineFull(Exception):
    """Too many questions are waiting; ``retry_after`` seconds is a fair guess of when there is room."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"{waiting} questions are waiting already")
        self.retry_after = retry_after


class Job:
    """One question on its way through the line; ``events`` is read by the request that asked."""

    def __init__(self, question: str, *, history: list[tuple[str, str]] | None = None,
                 options: dict[str, Any] | None = None, label: str = "", loop: asyncio.AbstractEventLoop) -> None:
        self.question = question
        self.history = history or []
        self.options = options or {}
        self.label = label
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.position: int | None = None
        self.queued_at = time.monotonic()
        self.started_at: float | None = None
        self._loop = loop

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Hand an event to the asking request (from any thread); dropped once it has gone."""
        if self.cancelled.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, data))
        except RuntimeError:  # the event loop has closed: the server is stopping
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()


class JobLine:
    """``parallel`` worker threads running ``run(job)`` for jobs in the order they came, ``max_waiting`` at most in line."""

    def __init__(self, run: Callable[[Job], None], *, parallel: int = 1, max_waiting: int = 64) -> None:
        self._run = run
        self.parallel = max(1, int(parallel))
        self.max_waiting = max(0, int(max_waiting))
        self._waiting: deque[Job] = deque()
        self._running_jobs: set[Job] = set()
        self._cond = threading.Condition()
        self._closed = False
        self.running = 0
        self.served = 0
        self._durations: deque[float] = deque(maxlen=50)  # recent answer times: the guess behind Retry-After
        self._threads = [threading.Thread(target=self._work, name=f"ragbook-answer-{i}", daemon=True)
                         for i in range(self.parallel)]
        for t in self._threads:
            t.start()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def typical_seconds(self) -> float:
        """A recent answer's usual duration (10 s before any)."""
        done = sorted(self._durations)
        return done[len(done) // 2] if done else 10.0

    def retry_after(self) -> int:
        """Seconds until the line has likely moved on by one more answer per worker."""
        ahead = len(self._waiting) + self.running
        return int(min(300, max(1, math.ceil(self.typical_seconds() * max(1, ahead) / self.parallel))))

    def submit(self, job: Job) -> int:
        """Put ``job`` in line; its place (0: next).  :class:`LineFull` when too many are waiting."""
        with self._cond:
            if self._closed:
                raise LineFull(len(self._waiting), 5)
            idle = max(0, self.parallel - self.running)  # workers about to take a waiting job
            if len(self._waiting) >= self.max_waiting + idle:
                raise LineFull(len(self._waiting), self.retry_after())
            self._waiting.append(job)
            self._announce()
            self._cond.notify()
            return job.position or 0

    def discard(self, job: Job) -> None:
        """The asker has gone: cancel ``job`` and, while it still waits, take it out of line."""
        job.cancel()
        with self._cond:
            try:
                self._waiting.remove(job)
            except ValueError:
                return
            self._announce()

    def _announce(self) -> None:
        """Tell each waiting job its place when it changed (called with the lock held)."""
        for place, job in enumerate(self._waiting):
            if job.position != place:
                job.position = place
                job.emit("queue", {"position": place, "running": self.running})

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                self.running += 1
                self._running_jobs.add(job)
                self._announce()
            try:
                if not job.cancelled.is_set():
                    job.started_at = time.monotonic()
                    self._run(job)
                    self._durations.append(time.monotonic() - job.started_at)
            except Exception:  # run() reports its own failures to the job; this is a bug: log it, keep serving
                log.exception("answering %r failed", job.question[:80])
                job.emit("error", {"message": "the server failed while answering; try again", "status": 500})
            finally:
                with self._cond:
                    self.running -= 1
                    self.served += 1
                    self._running_jobs.discard(job)

    def close(self, timeout: float = 3.0) -> None:
        """Stop: every job is told the server is stopping and cancelled (a running one stops at its next piece);
        the workers get ``timeout`` seconds in all to finish."""
        with self._cond:
            self._closed = True
            for job in [*self._waiting, *self._running_jobs]:
                job.emit("error", {"message": "the server is stopping; ask again in a moment", "status": 503,
                                   "retry_after": 5})
                job.cancel()
            self._waiting.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
