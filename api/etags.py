"""Strong ETags from aggregate versions, and `If-Match` as RFC 9110 defines it.

An ETag is `"<version>"`: the aggregate's version changes with every event, so it names
one state exactly. `If-Match` takes `*` or a comma-separated list of entity tags. Its
comparison is strong: a weak tag (`W/"3"`) never matches, and neither does a well-formed
tag that is not a version (`"abc"`): both are a `412`, as for any tag that does not match.
A value that is not an entity-tag list at all (`3`, `"3`, `3"`) is the client's mistake,
not a changed book: a `422` naming the header and its expected form, as this API answers
any malformed header (`X-Min-Event-Position`), so the client is not sent to refetch and
retry a request that can never succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError

# RFC 9110 entity-tag: an optional W/ and a quoted string of etagc characters
# (%x21 / %x23-7E / obs-text): no space, no DQUOTE, no control characters. A comma may
# sit inside the quotes, so a list is matched as a whole, never split on commas.
_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
# 1#entity-tag, with the empty list elements RFC 9110 asks recipients to tolerate.
_TAG_LIST = re.compile(rf"(?:,[ \t]*)*{_TAG}(?:[ \t]*,(?:[ \t]*{_TAG})?)*")
# Aggregate versions fit in 64 bits; more digits than that cannot be a version of ours.
_VERSION = re.compile(r"[0-9]{1,18}")


def etag(version: int) -> str:
    """The strong ETag of an aggregate version."""
    return f'"{version}"'


@dataclass(frozen=True)
class IfMatch:
    """A parsed `If-Match`: `*` (any current version), or the versions it accepts."""

    any_version: bool
    versions: frozenset[int]

    def accepts(self, version: int) -> bool:
        return self.any_version or version in self.versions


def _malformed(why: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": ("header", "if-match"),
                "msg": f'{why}: send the ETag as given, e.g. If-Match: "3" (quotes included)',
                "type": "value_error",
            }
        ]
    )


def parse_if_match(values: list[str]) -> IfMatch | None:
    """The header's field lines joined as one list; None when it was not sent."""
    if not values:
        return None
    combined = ", ".join(values).strip(" \t")
    if combined == "*":
        return IfMatch(any_version=True, versions=frozenset())
    if not _TAG_LIST.fullmatch(combined):
        raise _malformed(f"{combined[:60]!r} is not a list of entity tags")
    versions = {
        int(opaque)
        for weak, opaque in _ENTITY_TAG.findall(combined)
        if not weak and _VERSION.fullmatch(opaque)
    }
    return IfMatch(any_version=False, versions=frozenset(versions))
