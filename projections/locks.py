"""Advisory lock keys: the same 64-bit key for the same name in every process.

Runners take no advisory lock any more: a batch locks its projection version's tracking
row (`read_model.tracking.lock_tracking`), which also reads it in the same statement. A
rebuild's owner holds a session advisory lock keyed here for as long as it runs
(`projections.rebuild`), which the server releases if the owner's connection drops.
"""

from __future__ import annotations

import hashlib

_NAMESPACE = "bookstore.projection:"


def advisory_key(name: str, version: int | None = None) -> int:
    """A stable signed 64-bit key for a projection version (the same in every process).

    With a version, the key of one version of a projection; without, of any name.
    """
    key = name if version is None else f"{name}:v{version}"
    digest = hashlib.blake2b((_NAMESPACE + key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
