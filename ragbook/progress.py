"""One progress-bar helper for the whole package, switchable off globally.

Turn bars off with ``ragbook.set_progress(False)`` or the environment variable
``RAGBOOK_PROGRESS=0`` (handy in CI logs); ``ragbook.config.progress`` is the old spelling.
A panel shows progress in its own bar with :func:`report_to`, which routes every bar started
inside it to a callback.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

__all__ = ["config", "progress", "report_to", "set_progress"]

Callback = Callable[[str, int, "int | None"], None]  # (what, done, total)


@dataclass
class _Config:
    progress: bool = os.environ.get("RAGBOOK_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


config = _Config()


def set_progress(enabled: bool) -> None:
    """Show progress bars for long work (building an index, evaluating), or not."""
    config.progress = bool(enabled)
_callbacks: list[Callback] = []


@contextmanager
def report_to(callback: Callback) -> Iterator[None]:
    """Send the progress of everything run inside the block to ``callback(what, done, total)``."""
    _callbacks.append(callback)
    try:
        yield
    finally:
        _callbacks.remove(callback)


class _Reported:
    """Stands in for a tqdm bar (iteration, ``update``, ``with``) and reports to a callback."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, desc: str, callback: Callback) -> None:
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0
        self._callback = callback
        callback(desc, 0, total)

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._callback(self.desc, self.n, self.total)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Reported:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None, min_total: int = 0):
    """A ``tqdm.auto`` bar (a notebook widget in Jupyter, text in a terminal).

    ``min_total`` hides the bar for work too small to be worth one.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if _callbacks and enabled is not False:
        return _Reported(iterable, total, desc, _callbacks[-1])
    from tqdm.auto import tqdm

    show = config.progress if enabled is None else enabled
    if total is not None and total < min_total:
        show = False
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not show, leave=False, dynamic_ncols=True)
