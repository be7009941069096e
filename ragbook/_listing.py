"""The list behaviour ragbook's result objects share: ``len``, iteration and indexing over one list field."""

from __future__ import annotations

from typing import ClassVar, Generic, Iterator, TypeVar

__all__ = ["Listing"]

T = TypeVar("T")


class Listing(Generic[T]):
    """``len(x)``, ``for item in x`` and ``x[i]`` over the list in the field that ``_items`` names."""

    _items: ClassVar[str]

    def _list(self) -> list[T]:
        return getattr(self, self._items)

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[T]:
        return iter(self._list())

    def __getitem__(self, i: int) -> T:
        return self._list()[i]
