"""`bookstore books import FILE [--partial]`: the HTTP import, for staff with a file at hand.

Runs in this process against the configured database, through the same code as
`POST /books/import` (the readers of `adapters.book_files`, the two passes of
`write_model.book_import`, the batch loads of `adapters.aggregate_batches`), so it checks,
refuses and reports exactly as the API does. The report goes to standard output as JSON
(also when the import is refused); the progress bar and messages go to standard error.
Exit status 0 when the rows were imported, 1 when nothing (or, after a lost race, not
everything) was.

Unlike the API it sets no size or row limit: the file is read twice as a stream, and
memory grows only by the duplicate check (about 100 bytes a row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.aggregate_batches import batch_loader, parallel_batches
from adapters.book_files import BookFileError, Format, RowStream, read_rows, sniff_format
from bookstore import bootstrap
from bookstore.settings import get_settings
from write_model.book_batches import BookBatchImporter
from write_model.book_import import (
    DEFAULT_BATCH_SIZE,
    ImportInterruptedError,
    ImportRefusedError,
    ImportReport,
    import_books,
)
from write_model.context import CommandContext

books_app = typer.Typer(help="Manage the catalogue.", no_args_is_help=True)

_PHASES = {"checking": "Checking rows", "importing": "Importing"}


def _format_of(path: Path, binary: IO[bytes]) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    return sniff_format(binary)


def _print_report(report: ImportReport) -> None:
    typer.echo(json.dumps(report.as_json(), ensure_ascii=False))


@books_app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A CSV file with the header title,author,isbn,price,stock,category, or a "
            "JSON array of books (told apart by .csv/.json, else by the first character).",
        ),
    ],
    partial: Annotated[
        bool, typer.Option("--partial", help="Import the valid rows and report the others.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=5000, help="Books per atomic save.")
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Upsert books by ISBN from FILE; all or nothing unless --partial. Prints the report."""
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        bootstrap.migrate(settings)  # a fresh embedded install may not have run serve yet
    container = bootstrap.build(settings)
    app = container.write_app
    errors = Console(stderr=True)
    try:
        with (
            file.open("rb") as binary,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=errors,
                transient=False,
            ) as progress,
        ):
            file_format = _format_of(file, binary)
            tasks = {phase: progress.add_task(name, total=None) for phase, name in _PHASES.items()}

            def advance(phase: str, done: int, total: int | None) -> None:
                progress.update(tasks[phase], completed=done, total=total)

            def open_rows() -> RowStream:
                binary.seek(0)
                return read_rows(binary, file_format)

            report = import_books(
                BookBatchImporter(app, batch_loader(app)),
                CommandContext.system("cli-books-import"),
                open_rows,
                partial=partial,
                batch_size=batch_size,
                concurrency=parallel_batches(app),
                progress=advance,
            )
    except BookFileError as error:
        errors.print(f"error: {file}: {error.message}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ImportRefusedError as error:
        _print_report(error.report)
        errors.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ImportInterruptedError as error:
        _print_report(error.report)
        errors.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    finally:
        container.close()
    _print_report(report)
