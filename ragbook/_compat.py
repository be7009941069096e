"""Old spellings of renamed arguments, accepted for one release with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed"]


def renamed(new_value: Any, old_value: Any, old: str, new: str, where: str) -> Any:
    """The value given as ``new``, or as ``old`` (with a warning); both at once is an error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        from ragbook.errors import SettingsError

        raise SettingsError(f"{where}: pass {new}= only ({old}= is its old name)")
    warnings.warn(f"{where}: {old}= is now {new}= (the old name goes in the next release)", DeprecationWarning,
                  stacklevel=3)
    return old_value
