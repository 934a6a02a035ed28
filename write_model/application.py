"""The event-sourced application: one method per command.

Each command loads the aggregates it needs, calls their methods (where the invariants
live) and saves every changed aggregate in one atomic `save`. Optimistic concurrency on
every aggregate version makes races safe; `@retrying_on_conflict` runs a command that lost
a race again, a few times, with jitter. The plumbing they share is in `plumbing.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from write_model.book import Book
from write_model.cart import Cart
from write_model.cart_view import CartView, view_cart
from write_model.context import CommandContext
from write_model.credentials import CredentialStore, InMemoryCredentialStore
from write_model.errors import (
    EmptyCartError,
    InsufficientStockError,
    InvalidValueError,
    NotFoundError,
    PreconditionFailedError,
    StockShortfall,
)
from write_model.ids import cart_id_for, key_id
from write_model.isbn import normalise_isbn
from write_model.key_index import KeyIndex
from write_model.order import Order, OrderLine, OrderStatus
from write_model.plumbing import EventSourcedApp, retrying_on_conflict
from write_model.roster import ROSTER_ID, AdminRoster
from write_model.user import User
from write_model.values import Role, normalise_email, validate_quantity

ISBN_KEY = "isbn"
EMAIL_KEY = "email"
IDEMPOTENCY_KEY = "idempotency"
IDEMPOTENCY_KEY_MAX = 255


@dataclass(frozen=True)
class Created:
    """A command that made a new aggregate: its id and the store position it reached."""

    id: UUID
    position: int


@dataclass(frozen=True)
class PlacedOrder:
    """The order a `place_order` made, or found again for a repeated idempotency key."""

    order_id: UUID
    position: int
    created: bool


class Bookstore(EventSourcedApp):
    """The write side of the bookstore. Build one per process: it owns a connection pool."""

    name = "bookstore"
    snapshotting_intervals = {Cart: 20, Book: 100, User: 50}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        credentials: CredentialStore | None = None,
    ) -> None:
        super().__init__(env)
        self.credentials: CredentialStore = credentials or InMemoryCredentialStore()

    # ------------------------------------------------------------------ books

    def get_book(self, book_id: UUID, version: int | None = None) -> Book:
        """A live book; removed books are not found."""
        book = self._get(Book, book_id, "Book")
        if version is not None:
            book = self.repository.get(book_id, version=version)
        if book.removed:
            raise NotFoundError(f"Book {book_id} not found")
        return book

    def find_book_by_isbn(self, isbn: str) -> Book | None:
        owner = self._owner_of(ISBN_KEY, normalise_isbn(isbn))
        return self._find(Book, owner) if owner else None

    @retrying_on_conflict
    def register_book(
        self,
        ctx: CommandContext,
        *,
        title: str,
        author: str,
        isbn: str,
        price: Decimal | int | str,
        stock: int = 0,
        category: str,
    ) -> Created:
        """Add a book to the catalogue; its ISBN must be new (or released by a removal)."""
        book = Book.register(
            title=title, author=author, isbn=isbn, price=price, stock=stock, category=category
        )
        index = self._claim_key(ISBN_KEY, book.isbn, book.id)
        return Created(book.id, self._save(ctx, book, index))

    @retrying_on_conflict
    def change_book(
        self,
        ctx: CommandContext,
        book_id: UUID,
        *,
        expected_version: int | None = None,
        title: str | None = None,
        author: str | None = None,
        isbn: str | None = None,
        price: Decimal | int | str | None = None,
        stock: int | None = None,
        category: str | None = None,
    ) -> int:
        """Change any subset of a book's fields; `expected_version` is the If-Match check."""
        book = self.get_book(book_id)
        if expected_version is not None and book.version != expected_version:
            raise PreconditionFailedError(
                f"Book {book_id} is at version {book.version}, not {expected_version}"
            )
        old_isbn = book.isbn
        book.change_details(title=title, author=author, isbn=isbn, price=price, category=category)
        if stock is not None:
            book.correct_stock(stock)
        indexes: list[Aggregate] = []
        if book.isbn != old_isbn:
            indexes.extend(self._move_key(ISBN_KEY, old_isbn, book.isbn, book.id))
        return self._save(ctx, book, *indexes)

    @retrying_on_conflict
    def restock_book(self, ctx: CommandContext, book_id: UUID, quantity: int) -> int:
        """Add delivered copies to a live book's stock."""
        book = self.get_book(book_id)
        book.restock(quantity)
        return self._save(ctx, book)

    @retrying_on_conflict
    def remove_book(self, ctx: CommandContext, book_id: UUID) -> int:
        """Withdraw a book; its ISBN becomes free. A second removal is not found."""
        book = self.get_book(book_id)
        book.remove()
        index = self._get(KeyIndex, key_id(ISBN_KEY, book.isbn), "ISBN index")
        index.release()
        return self._save(ctx, book, index)

    # ------------------------------------------------------------------ users

    def get_user(self, user_id: UUID) -> User:
        return self._get(User, user_id, "User")

    def find_user_by_email(self, email: str) -> User | None:
        try:
            address = normalise_email(email)
        except InvalidValueError:
            return None
        owner = self._owner_of(EMAIL_KEY, address)
        return self._find(User, owner) if owner else None

    def password_hash_of(self, user_id: UUID) -> str | None:
        return self.credentials.get_password_hash(user_id)

    @retrying_on_conflict
    def register_user(
        self, ctx: CommandContext, *, email: str, password_hash: str, full_name: str = ""
    ) -> Created:
        """Register a customer. The hash goes to the credential store, never to the log."""
        user = User.register(email=email, full_name=full_name)
        index = self._claim_key(EMAIL_KEY, user.email, user.id)
        position = self._saving_with_hash(user.id, password_hash, ctx, user, index)
        return Created(user.id, position)

    def _saving_with_hash(
        self, user_id: UUID, password_hash: str, ctx: CommandContext, *aggregates: Aggregate
    ) -> int:
        """Save with a new password hash in place, or leave the old hash if the save fails.

        The hash table and the log are two stores: the hash goes first, so that no event
        ever announces a password that is not there yet, and is put back if the save loses.
        Put back only over this command's own hash: a change that landed meanwhile (its
        hash and its event both stored) must not be undone by this one's failure.
        """
        previous = self.credentials.get_password_hash(user_id)
        self.credentials.set_password_hash(user_id, password_hash)
        try:
            return self._save(ctx, *aggregates)
        except BaseException:
            self.credentials.replace_password_hash(user_id, expected=password_hash, new=previous)
            raise

    @retrying_on_conflict
    def change_user_profile(
        self,
        ctx: CommandContext,
        user_id: UUID,
        *,
        full_name: str | None = None,
        email: str | None = None,
        password_hash: str | None = None,
    ) -> int:
        """Change name, email and/or password in one atomic step.

        The caller has checked the current password. A new password ends every session.
        """
        user = self.get_user(user_id)
        old_email = user.email
        if full_name is not None:
            user.change_full_name(full_name)
        changed: list[Aggregate] = [user]
        if email is not None and user.change_email(email):
            changed.extend(self._move_key(EMAIL_KEY, old_email, user.email, user.id))
        if password_hash is None:
            return self._save(ctx, *changed)
        user.record_password_change()
        return self._saving_with_hash(user_id, password_hash, ctx, *changed)

    def change_password(self, ctx: CommandContext, user_id: UUID, password_hash: str) -> int:
        """Store the new hash and record (without it) that the password changed."""
        return self.change_user_profile(ctx, user_id, password_hash=password_hash)

    def rehash_password(self, user_id: UUID, password_hash: str, *, replacing: str) -> bool:
        """Replace the hash `replacing` by a stronger one of the same password; whether it did.

        No event, no session ends. Compare-and-set: the caller verified the password against
        `replacing`, and if the password changed since (a reset landing during the slow
        rehash), the new password's hash stays and this upgrade of the old one is dropped.
        """
        return self.credentials.replace_password_hash(
            user_id, expected=replacing, new=password_hash
        )

    @retrying_on_conflict
    def end_sessions(self, ctx: CommandContext, user_id: UUID) -> int:
        """End every session of a user (a stolen refresh token was seen): tokens issued
        before stop working, and the user logs in again."""
        user = self.get_user(user_id)
        user.end_sessions()
        return self._save(ctx, user)

    def _roster_for_change(self) -> AdminRoster:
        return self._find(AdminRoster, ROSTER_ID) or AdminRoster()

    @retrying_on_conflict
    def change_role(self, ctx: CommandContext, user_id: UUID, role: Role) -> int:
        """Change a user's role; the last active admin cannot be demoted."""
        user = self.get_user(user_id)
        if not user.change_role(Role(role)):
            return self.head()
        roster = self._roster_for_change()
        if user.role is Role.ADMIN and user.is_active:
            roster.add(user.id)
        else:
            roster.remove(user.id, why="admin")
        return self._save(ctx, user, roster)

    @retrying_on_conflict
    def set_user_active(self, ctx: CommandContext, user_id: UUID, *, is_active: bool) -> int:
        """(De)activate a user; the last active admin cannot be deactivated."""
        user = self.get_user(user_id)
        changed = user.reactivate() if is_active else user.deactivate()
        if not changed:
            return self.head()
        roster = self._roster_for_change()
        if user.role is Role.ADMIN and is_active:
            roster.add(user.id)
        else:
            roster.remove(user.id, why="active admin")
        return self._save(ctx, user, roster)

    def ensure_admin(
        self, ctx: CommandContext, *, email: str, password_hash: str, full_name: str = ""
    ) -> tuple[UUID, str]:
        """Make `email` an active admin, registering it first if needed.

        Returns the user id and what was done ("created", "promoted", "unchanged"); an
        existing user's password is left alone.
        """
        existing = self.find_user_by_email(email)
        if existing is None:
            user_id = self.register_user(
                ctx, email=email, password_hash=password_hash, full_name=full_name
            ).id
            outcome = "created"
        else:
            user_id = existing.id
            outcome = "unchanged"
        user = self.get_user(user_id)
        if user.role is not Role.ADMIN:
            self.change_role(ctx, user_id, Role.ADMIN)
            outcome = "promoted" if outcome == "unchanged" else outcome
        if not user.is_active:
            self.set_user_active(ctx, user_id, is_active=True)
            outcome = "promoted" if outcome == "unchanged" else outcome
        return user_id, outcome

    # ------------------------------------------------------------------ cart

    def _cart_of(self, user_id: UUID) -> Cart | None:
        return self._find(Cart, cart_id_for(user_id))

    def _books_of(self, book_ids: Iterable[UUID]) -> dict[UUID, Book]:
        return self._get_many(Book, book_ids, "Book")

    def _cart_and_books_of(self, user_id: UUID) -> tuple[Cart | None, dict[UUID, Book]]:
        """The cart and its books, up to date. A cart cached here names its books, so the
        cart and those are fast-forwarded together, in one statement; books the cart
        gained meanwhile (another process added them) are loaded after it."""
        cart_id = cart_id_for(user_id)
        guess = self.batching_repository.peek(cart_id, lambda c: [b for b, _ in c.items()])
        found = self.batching_repository.get_many([cart_id, *(guess or [])])
        cart = found.get(cart_id)
        if not isinstance(cart, Cart):
            return None, {}
        wanted = [b for b, _ in cart.items()]
        books = {b: found[b] for b in wanted if isinstance(found.get(b), Book)}
        missing = [b for b in wanted if b not in books]
        if missing:
            books.update(self._books_of(missing))
        return cart, cast(dict[UUID, Book], books)

    def view_cart(self, user_id: UUID) -> CartView:
        """The cart with current prices and availability, read from the write model."""
        cart = self._cart_of(user_id)
        books = self._books_of(b for b, _ in cart.items()) if cart else {}
        return view_cart(cart, books)

    def _check_stock(self, book: Book, quantity: int) -> None:
        gap = book.shortfall(quantity)
        if gap is not None:
            raise InsufficientStockError([gap])

    @retrying_on_conflict
    def add_to_cart(
        self, ctx: CommandContext, user_id: UUID, book_id: UUID, quantity: int = 1
    ) -> int:
        """Add copies of a live book; the line may not exceed the stock nor 99."""
        validate_quantity(quantity)
        book = self.get_book(book_id)
        cart = self._cart_of(user_id) or Cart(user_id=user_id)
        current = cart.lines.get(str(book_id), 0)
        cart.add_item(book_id, quantity)
        self._check_stock(book, current + quantity)
        return self._save(ctx, cart)

    @retrying_on_conflict
    def set_cart_quantity(
        self, ctx: CommandContext, user_id: UUID, book_id: UUID, quantity: int
    ) -> int:
        """Set a line's quantity (1..99); the line must exist and the stock must cover it."""
        validate_quantity(quantity)
        cart = self._cart_of(user_id)
        if cart is None:
            raise NotFoundError(f"Book {book_id} is not in the cart")
        cart.quantity_of(book_id)
        book = self._get(Book, book_id, "Book")
        self._check_stock(book, quantity)
        cart.set_quantity(book_id, quantity)
        return self._save(ctx, cart)

    @retrying_on_conflict
    def remove_from_cart(self, ctx: CommandContext, user_id: UUID, book_id: UUID) -> int:
        """Drop a line; a book that is not in the cart is not found."""
        cart = self._cart_of(user_id)
        if cart is None:
            raise NotFoundError(f"Book {book_id} is not in the cart")
        cart.remove_item(book_id)
        return self._save(ctx, cart)

    @retrying_on_conflict
    def clear_cart(self, ctx: CommandContext, user_id: UUID) -> int:
        """Empty the cart; an empty or missing cart records nothing (returns the head)."""
        cart = self._cart_of(user_id)
        if cart is None or not cart.clear():
            return self.head()
        return self._save(ctx, cart)

    # ------------------------------------------------------------------ orders

    def get_order(self, order_id: UUID) -> Order:
        return self._get(Order, order_id, "Order")

    @retrying_on_conflict
    def place_order(
        self, ctx: CommandContext, user_id: UUID, *, idempotency_key: str | None = None
    ) -> PlacedOrder:
        """Turn the cart into an order: snapshot prices, take stock, empty the cart, atomically.

        With an idempotency key, the same user and key give back the first order.
        """
        idem = f"{user_id}:{idempotency_key}" if idempotency_key is not None else None
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise InvalidValueError("idempotency_key", "must be 1..255 characters")
        if (earlier := self._earlier_order(idem)) is not None:
            return earlier
        cart, books = self._cart_and_books_of(user_id)
        if cart is None or not cart.lines:
            # A request racing with this key may have just placed the order (and emptied
            # the cart) between the key check above and the cart load: that is a retry.
            if (earlier := self._earlier_order(idem)) is not None:
                return earlier
            raise EmptyCartError("The cart is empty")
        items = cart.items()
        shortfalls: list[StockShortfall] = [
            gap for b, q in items if (gap := books[b].shortfall(q)) is not None
        ]
        if shortfalls:
            if (earlier := self._earlier_order(idem)) is not None:
                return earlier  # the racing request took the stock for this very order
            raise InsufficientStockError(shortfalls)
        lines = [
            OrderLine(book_id=b, title=books[b].title, quantity=q, unit_price=books[b].price)
            for b, q in items
        ]
        order = Order.place(user_id=user_id, lines=lines)
        for b, q in items:
            books[b].reserve(q, order.id)
        cart.clear()
        index = KeyIndex(kind=IDEMPOTENCY_KEY, key=idem, owner_id=order.id) if idem else None
        position = self._save(ctx, order, *books.values(), cart, index)
        return PlacedOrder(order.id, position, created=True)

    def _earlier_order(self, idem: str | None) -> PlacedOrder | None:
        """The order an earlier request with this user's idempotency key placed, if any."""
        if idem is None:
            return None
        earlier = self._owner_of(IDEMPOTENCY_KEY, idem)
        return PlacedOrder(earlier, self.head(), created=False) if earlier is not None else None

    @retrying_on_conflict
    def cancel_order(
        self, ctx: CommandContext, order_id: UUID, *, actor_id: UUID, as_staff: bool
    ) -> int:
        """Cancel and put the stock back. Another user's order is not found for a customer."""
        order = self._visible_order(order_id, actor_id=actor_id, as_staff=as_staff)
        order.cancel(by_staff=as_staff)
        books = self._books_of(line.book_id for line in order.lines)
        for line in order.lines:
            books[line.book_id].release(line.quantity, order.id)
        return self._save(ctx, order, *books.values())

    @retrying_on_conflict
    def advance_order(self, ctx: CommandContext, order_id: UUID, status: OrderStatus) -> int:
        """Staff move an order along pending -> paid -> shipped -> delivered."""
        order = self.get_order(order_id)
        order.advance_to(OrderStatus(status))
        return self._save(ctx, order)

    def _visible_order(self, order_id: UUID, *, actor_id: UUID, as_staff: bool) -> Order:
        order = self.get_order(order_id)
        if not as_staff and order.user_id != actor_id:
            raise NotFoundError(f"Order {order_id} not found")
        return order

    def order_for(self, order_id: UUID, *, actor_id: UUID, as_staff: bool) -> Order:
        """An order as its owner or staff may see it."""
        return self._visible_order(order_id, actor_id=actor_id, as_staff=as_staff)


def event_metadata(domain_event: Any) -> dict[str, Any]:
    """The metadata a command stamped on an event ({} for events saved without one)."""
    return dict(getattr(domain_event, "metadata", None) or {})
