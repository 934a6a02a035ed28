"""`bookstore demo-data`: a catalogue to browse right after `make run`."""

from __future__ import annotations

import typer
from rich.progress import Progress

from bookstore import bootstrap
from bookstore.demo_catalogue import demo_books
from bookstore.settings import get_settings
from write_model.context import CommandContext
from write_model.errors import DuplicateKeyError


def demo_data(
    books: int = typer.Option(200, "--books", min=1, max=1_000_000, help="How many books."),
    seed: int = typer.Option(0, help="The same seed gives the same books."),
) -> None:
    """Load a realistic catalogue through the same commands staff use (ISBNs already
    present are skipped, so running it twice with one seed adds nothing)."""
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        bootstrap.migrate(settings)  # a fresh embedded install may not have run serve yet
    container = bootstrap.build(settings)
    ctx = CommandContext.system("cli-demo-data")
    created = skipped = 0
    try:
        with Progress() as progress:
            task = progress.add_task("Registering books", total=books)
            for book in demo_books(books, seed=seed):
                try:
                    container.write_app.register_book(
                        ctx,
                        title=book.title,
                        author=book.author,
                        isbn=book.isbn,
                        price=book.price,
                        stock=book.stock,
                        category=book.category,
                    )
                    created += 1
                except DuplicateKeyError:
                    skipped += 1
                progress.advance(task)
    finally:
        container.close()
    typer.echo(f"created {created} books, skipped {skipped} already present")


def register_demo_commands(app: typer.Typer) -> None:
    app.command("demo-data")(demo_data)
