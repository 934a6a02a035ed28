"""ISBN checksums and normalisation to ISBN-13.

The catalogue keys books by ISBN, so every spelling of one ISBN (hyphens, spaces, the
ISBN-10 form) must collapse to the same 13 digits before it is used as a key.
"""

from __future__ import annotations

from write_model.errors import InvalidValueError

_SEPARATORS = str.maketrans("", "", "- ")


def isbn10_is_valid(digits: str) -> bool:
    """Check an ISBN-10 of 9 digits and a digit-or-X check character."""
    if len(digits) != 10 or not digits[:9].isdigit():
        return False
    last = digits[9].upper()
    if not (last.isdigit() or last == "X"):
        return False
    values = [int(c) for c in digits[:9]] + [10 if last == "X" else int(last)]
    return sum((10 - i) * v for i, v in enumerate(values)) % 11 == 0


def isbn13_check_digit(first12: str) -> int:
    """The check digit that completes 12 digits into an ISBN-13."""
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(first12))
    return (10 - total % 10) % 10


def isbn13_is_valid(digits: str) -> bool:
    """Check 13 digits with a correct EAN-13 check digit and a book prefix."""
    return (
        len(digits) == 13
        and digits.isdigit()
        and digits[:3] in ("978", "979")
        and isbn13_check_digit(digits[:12]) == int(digits[12])
    )


def normalise_isbn(raw: str) -> str:
    """Return the ISBN-13 form of an ISBN-10 or ISBN-13, or raise InvalidValueError."""
    digits = raw.strip().translate(_SEPARATORS).upper()
    if isbn13_is_valid(digits):
        return digits
    if isbn10_is_valid(digits):
        body = "978" + digits[:9]
        return body + str(isbn13_check_digit(body))
    raise InvalidValueError("isbn", f"'{raw}' is not a valid ISBN-10 or ISBN-13")
