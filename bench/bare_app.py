"""The HTTP baseline: a bare FastAPI route doing one primary-key SELECT, nothing else.

Served by uvicorn with the same worker count as `bookstore serve` in the same run, on the same
database, so `GET /books` is compared with what this stack costs at the least: a sync route,
a psycopg pool, one indexed row. `BENCH_DATABASE_URL` names the database.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from fastapi import FastAPI, HTTPException
from psycopg_pool import ConnectionPool

app = FastAPI()
_pool: ConnectionPool | None = None


def pool() -> ConnectionPool:
    global _pool  # noqa: PLW0603 (one pool per worker process, made on first use)
    if _pool is None:
        _pool = ConnectionPool(os.environ["BENCH_DATABASE_URL"], min_size=4, max_size=10)
    return _pool


@app.get("/books/{book_id}")
def one_book(book_id: UUID) -> dict[str, Any]:
    with pool().connection() as connection:
        row = connection.execute(
            "SELECT id, title, author, isbn, price_cents, stock, category FROM book_listing"
            " WHERE id = %s",
            (book_id,),
        ).fetchone()
    if row is None:
        raise HTTPException(404)
    return {
        "id": str(row[0]),
        "title": row[1],
        "author": row[2],
        "isbn": row[3],
        "price": f"{row[4] // 100}.{row[4] % 100:02d}",
        "stock": row[5],
        "category": row[6],
    }
