"""A realistic-looking catalogue for a fresh install: titles, authors, categories, ISBNs.

Generated, not copied: a seeded random walk over word lists, so `bookstore demo-data` is
repeatable (the same seed gives the same books, and a re-run finds their ISBNs taken) and
the values look like a bookshop's without shipping anybody's real catalogue.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from write_model.isbn import isbn13_check_digit

FIRST_NAMES = (
    "Ada", "Alice", "Amara", "Ben", "Carmen", "Chidi", "Clara", "Daniel", "Elena", "Emil",
    "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Julia", "Kenji",
    "Lena", "Leo", "Lucia", "Malik", "Maria", "Mateo", "Mei", "Nadia", "Noah", "Olga",
    "Omar", "Priya", "Rafael", "Rosa", "Samuel", "Sofia", "Tomas", "Ursula", "Viktor", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Adeyemi", "Bergstrom", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia",
    "Haddad", "Ishikawa", "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Novak",
    "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Silva", "Tanaka", "Urquhart", "Varga",
    "Weber", "Xu", "Yilmaz", "Zielinski", "Lindqvist", "Mbeki", "Costa", "Horvath", "Keller",
)  # fmt: skip
CATEGORIES = (
    "Fiction", "Science Fiction", "Fantasy", "Mystery", "Thriller", "Romance", "History",
    "Biography", "Science", "Philosophy", "Poetry", "Travel", "Cooking", "Children",
    "Business", "Computing", "Art", "Music",
)  # fmt: skip
ADJECTIVES = (
    "Silent", "Hidden", "Last", "Broken", "Golden", "Northern", "Distant", "Secret", "Burning",
    "Forgotten", "Endless", "Quiet", "Crimson", "Hollow", "Wandering", "Bright", "Lost",
    "Winter", "Velvet", "Iron", "Paper", "Glass", "Midnight", "Salt",
)  # fmt: skip
NOUNS = (
    "River", "Garden", "Empire", "Lighthouse", "Orchard", "Harbour", "Cartographer", "Library",
    "Mountain", "Season", "Kingdom", "Archive", "Island", "Compass", "Machine", "Letters",
    "Forest", "City", "Station", "Tide", "Clockmaker", "Bridge", "Map", "Voyage",
)  # fmt: skip
PATTERNS = (
    "The {adj} {noun}",
    "{noun} of {adj} {noun2}s",
    "A {adj} {noun}",
    "The {noun} and the {noun2}",
    "{adj} {noun}: A Novel",
    "Notes from the {adj} {noun}",
    "The {noun2}'s {noun}",
)


@dataclass(frozen=True)
class DemoBook:
    """One book's create fields, as `Bookstore.register_book` takes them."""

    title: str
    author: str
    isbn: str
    price: Decimal
    stock: int
    category: str


def isbn13(rng: random.Random) -> str:
    """A random ISBN-13 in the 978 prefix with a correct check digit."""
    first12 = "978" + "".join(str(rng.randrange(10)) for _ in range(9))
    return first12 + str(isbn13_check_digit(first12))


def demo_books(count: int, *, seed: int = 0) -> Iterator[DemoBook]:
    """`count` distinct books (distinct ISBNs), the same ones for the same seed."""
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    seen: set[str] = set()
    while len(seen) < count:
        isbn = isbn13(rng)
        if isbn in seen:
            continue
        seen.add(isbn)
        title = rng.choice(PATTERNS).format(
            adj=rng.choice(ADJECTIVES), noun=rng.choice(NOUNS), noun2=rng.choice(NOUNS)
        )
        yield DemoBook(
            title=title,
            author=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            isbn=isbn,
            price=Decimal(rng.randrange(399, 6000)) / 100,
            stock=rng.choice((0, 1, 2, 3, 5, 8, 12, 20, 40)),
            category=rng.choice(CATEGORIES),
        )
