"""`mushroom-db`: apply migrations and prune old predictions and feedback."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mushroom_common.storage import StorageError
from mushroom_common.store import (
    DatabaseUrlError,
    PredictionStore,
    StoreError,
    StoreSettings,
    redact,
    resolve_database_url,
)

app = typer.Typer(
    name="mushroom-db",
    help="The prediction and feedback database (MUSHROOM_DATABASE_URL): migrations, retention.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger("mushroom_common.store")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="database URL (default MUSHROOM_DATABASE_URL, else SQLite under local storage)",
    ),
]


def _open(url: str | None) -> PredictionStore:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        resolved = resolve_database_url(url)
    except (DatabaseUrlError, StorageError, ValueError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from exc
    logger.info("database %s", redact(resolved))
    return PredictionStore(resolved)


@app.command()
def upgrade(database_url: UrlOption = None) -> None:
    """Apply every migration not applied yet (creates the tables in an empty database)."""
    store = _open(database_url)
    try:
        revision = store.upgrade()
    except StoreError as exc:
        logger.error("migration failed: %s", exc)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(f"database at migration {revision}")


@app.command()
def prune(
    days: Annotated[
        int | None,
        typer.Option(
            help="delete what is older than this (default MUSHROOM_RETENTION_DAYS)", min=1
        ),
    ] = None,
    database_url: UrlOption = None,
) -> None:
    """Delete predictions and feedback older than the retention, and say how many."""
    retention = days or StoreSettings().retention_days
    store = _open(database_url)
    try:
        store.require_schema()
        result = store.prune(retention)
    except StoreError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(
        f"deleted {result.predictions} predictions and {result.feedback} feedback older than "
        f"{retention} days (before {result.cutoff:%Y-%m-%d %H:%M} UTC)"
    )


if __name__ == "__main__":
    app()
