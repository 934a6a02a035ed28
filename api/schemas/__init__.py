"""Request and response models of the HTTP API (`XCreate` / `XUpdate` / `XPublic`).

Every string field of a request body is `Text` or `OneLineText` (`api.schemas.text`), never
a plain `str`: they refuse a lone surrogate (and control characters) with a 422.
"""

from api.schemas.text import OneLineText, Text

__all__ = ["OneLineText", "Text"]
