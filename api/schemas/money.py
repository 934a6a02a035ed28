"""Money as the contract writes it: a decimal string with exactly two places, never a float.

Response models hold the text itself (`MoneyText`), made by `money_text` from an exact
`Decimal`, so no float ever stands between the write model's amounts and the JSON.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from pydantic import Field

CENT = Decimal("0.01")
MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"

MoneyText = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        description="A decimal amount with exactly two places, as a string.",
        examples=["12.50"],
    ),
]


def money_text(amount: Decimal) -> str:
    """`Decimal("0.3")` -> `"0.30"`; amounts are exact, so rounding only pads."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))
