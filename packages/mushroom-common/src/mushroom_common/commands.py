"""What every service's command line shares: the `--storage` option and opening it."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mushroom_common.storage import Storage, StorageError, open_storage

logger = logging.getLogger(__name__)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="storage root (path, file:// or gs:// URI); default: MUSHROOM_STORAGE_URI",
    ),
]


def open_storage_or_exit(uri: str | None) -> Storage:
    """The storage at `uri` (else MUSHROOM_STORAGE_URI); a bad URI or an unreachable bucket is one
    logged sentence and exit status 2, not a traceback."""
    try:
        return open_storage(uri)
    except (ValueError, StorageError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from exc


def command_app(name: str, summary: str) -> typer.Typer:
    """A service's Typer app: help without arguments, no shell completion, plain tracebacks."""
    return typer.Typer(
        name=name,
        help=summary,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
