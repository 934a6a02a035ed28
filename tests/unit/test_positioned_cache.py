"""`PositionedCache`: a value is served only at the stamp it was read at, and never goes back."""

from __future__ import annotations

import pytest

from read_model.positioned_cache import ListingCache, PositionedCache, Stamp


def test_a_value_is_served_at_its_own_stamp_only() -> None:
    cache: PositionedCache[str] = PositionedCache(8)
    cache.put("q", Stamp(1, 10), "page at 10")
    assert cache.get("q", Stamp(1, 10)) == "page at 10"
    assert cache.get("q", Stamp(1, 11)) is None  # the projection moved: read afresh
    assert cache.get("q", Stamp(2, 10)) is None  # a rebuild switched versions
    assert cache.get("other", Stamp(1, 10)) is None


def test_a_newer_stamp_replaces_and_an_older_one_never_comes_back() -> None:
    cache: PositionedCache[str] = PositionedCache(8)
    cache.put("q", Stamp(1, 10), "old")
    cache.put("q", Stamp(1, 12), "new")
    cache.put("q", Stamp(1, 11), "late racer")  # read before the newer one, put after it
    assert cache.get("q", Stamp(1, 12)) == "new"
    assert cache.get("q", Stamp(1, 11)) is None
    cache.put("q", Stamp(2, 0), "rebuilt")  # a new version outranks any old position
    assert cache.get("q", Stamp(2, 0)) == "rebuilt"


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: PositionedCache[int] = PositionedCache(2)
    stamp = Stamp(1, 1)
    cache.put("a", stamp, 1)
    cache.put("b", stamp, 2)
    assert cache.get("a", stamp) == 1  # "a" used: "b" is now the oldest
    cache.put("c", stamp, 3)
    assert len(cache) == 2
    assert cache.has("a")
    assert cache.has("c")
    assert not cache.has("b")


def test_a_listing_cache_of_size_zero_is_off() -> None:
    assert not ListingCache(0).enabled
    assert ListingCache(1).enabled
    with pytest.raises(ValueError, match="at least 1"):
        PositionedCache(0)
