"""Results of read-model queries, kept for as long as their projection stands still.

A projection's rows change only in the transaction that also moves its tracking row, so a
query's result is a function of the query and of the serving `(version, position)` read
in the same snapshot: while that stamp is unchanged, the result is too, exactly. A page of
`GET /books` is read far more often than the catalogue changes, and its `total` (an exact
count over every match) costs several times the page itself; keeping them against the stamp
serves repeats of a query, and every later page of a filter walked page by page, without
recounting, and never serves anything a fresh read would not.

Per process and bounded: the least recently used entries go first, and an entry for an
older stamp is only replaced, never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, NamedTuple, TypeVar

V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 4096


class Stamp(NamedTuple):
    """Which state of a projection's rows a result was read from: its serving version (a
    rebuild switches it) and that version's position."""

    version: int
    position: int


class PositionedCache(Generic[V]):
    """A thread-safe LRU map from a query key to the value read at one stamp."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            msg = f"max_entries must be at least 1 (got {max_entries})"
            raise ValueError(msg)
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Stamp, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Stamp) -> V | None:
        """The value kept for `key` if it was read at exactly `stamp`, else None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != stamp:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def has(self, key: Hashable) -> bool:
        """Whether anything (at any stamp) is kept for `key`: worth reading the stamp first."""
        with self._lock:
            return key in self._entries

    def put(self, key: Hashable, stamp: Stamp, value: V) -> None:
        """Keep `value` as read at `stamp`, unless a newer stamp's value is kept already
        (two requests racing must not put an older result back)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > stamp:
                return
            self._entries[key] = (stamp, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ListingCache:
    """What one list endpoint keeps: the bodies of its pages (by the whole query) and the
    totals of its filters (by the filters alone, so the next page of a walk reuses them).

    `max_entries` 0 keeps nothing: every read is fresh.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.enabled = max_entries > 0
        size = max(1, max_entries)
        self.pages: PositionedCache[bytes] = PositionedCache(size)
        self.totals: PositionedCache[int] = PositionedCache(size)
