"""Values worked out once per config object, found again by the object's identity.

Config models are frozen, but their attributes read several times slower than a plain one
(pydantic's `__getattr__` keeps the interpreter from specialising the read), so what the hot
path needs of a deployment or a key is derived once. Keyed by `id()`, with the object kept in
the entry so that its id cannot be reused by another while the entry lives; a reloaded config
brings new objects, which get entries of their own. Bounded: past `limit` entries (objects built
per call rather than a config's few) it starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

LIMIT = 1024


class ByIdentity(Generic[K, V]):
    """`make(obj)` for each object, worked out on the first `of(obj)` and kept."""

    __slots__ = ("_known", "_limit", "_make")

    def __init__(self, make: Callable[[K], V], limit: int = LIMIT) -> None:
        self._make = make
        self._limit = limit
        self._known: dict[int, tuple[K, V]] = {}

    def of(self, obj: K) -> V:
        entry = self._known.get(id(obj))
        if entry is None or entry[0] is not obj:
            if len(self._known) >= self._limit:
                self._known.clear()
            entry = self._known[id(obj)] = (obj, self._make(obj))
        return entry[1]
