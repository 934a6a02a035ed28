"""Password hashing through the passlib API (libpass): argon2id now, bcrypt still verified.

Old bcrypt hashes keep working and are replaced by argon2id at the next login
(`needs_update`), so the scheme can move on without resetting anybody's password.
"""

from __future__ import annotations

from passlib.context import CryptContext


class PasswordHasher:
    """Hash, verify and tell when a stored hash should be upgraded."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._context = CryptContext(
            schemes=["argon2", "bcrypt"],
            deprecated=["bcrypt"],
            argon2__type="ID",
            argon2__time_cost=time_cost,
            argon2__memory_cost=memory_kib,
            argon2__parallelism=parallelism,
        )
        # Verifying an unknown email against this keeps its timing equal to a real one.
        self._dummy_hash = self.hash("not-a-real-password-dummy")

    def hash(self, password: str) -> str:
        return str(self._context.hash(password))

    def verify(self, password: str, password_hash: str | None) -> bool:
        """False for a wrong password or no hash at all, in about the same time."""
        if password_hash is None:
            self._context.verify(password, self._dummy_hash)
            return False
        try:
            return bool(self._context.verify(password, password_hash))
        except (ValueError, TypeError):
            return False

    def needs_update(self, password_hash: str) -> bool:
        return bool(self._context.needs_update(password_hash))
