"""What is stored instead of a bearer secret (a refresh or reset token)."""

from __future__ import annotations

import hashlib


def digest(token: str) -> str:
    """The token's SHA-256, hex: tokens are long random values, nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()
