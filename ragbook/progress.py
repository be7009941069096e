"""One progress-bar helper for the whole package, switchable off globally.

Turn bars off with ``ragbook.config.progress = False`` or the environment variable
``RAGBOOK_PROGRESS=0`` (handy in CI logs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass
class _Config:
    progress: bool = os.environ.get("RAGBOOK_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


config = _Config()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None, min_total: int = 0):
    """A ``tqdm.auto`` bar (a notebook widget in Jupyter, text in a terminal).

    ``min_total`` hides the bar for work too small to be worth one.
    """
    from tqdm.auto import tqdm

    show = config.progress if enabled is None else enabled
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if total is not None and total < min_total:
        show = False
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not show, leave=False, dynamic_ncols=True)
