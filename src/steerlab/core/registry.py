"""Name → class registries with did-you-mean errors (methods, scorers, aggregators, ...).

Every pluggable piece of steerlab is looked up by name through a :class:`Registry`, so the CLI,
server and evaluation code never branch on which method or scorer they hold.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from steerlab.errors import SteerlabError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects that reports unknown names with close matches."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; re-registering the same name is an error."""
        if name in self._items and self._items[name] is not item:
            raise SteerlabError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` form of :meth:`register`."""

        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def get(self, name: str) -> T:
        """Return the item called ``name`` or raise with a did-you-mean hint."""
        if not isinstance(name, str):
            known = ", ".join(sorted(self._items)) or "none"
            raise SteerlabError(f"{self.kind} must be a name, got {name!r}. Known: {known}.")
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._items)) or "none"
            raise SteerlabError(f"unknown {self.kind} {name!r}.{hint} Known: {known}.") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
