"""The database URL of every service (MUSHROOM_DATABASE_URL, read in mushroom_common.settings)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mushroom_common.settings import SharedSettings
from mushroom_common.storage import Storage, open_storage

logger = logging.getLogger(__name__)

DEFAULT_SQLITE_KEY = "db/mushroom.sqlite3"
FALLBACK_SQLITE_PATH = Path.home() / ".cache" / "mushroom-id" / "mushroom.sqlite3"
# Plain `postgresql://` (what Cloud SQL, psql and most tutorials write) means psycopg 3 here.
_POSTGRES_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


# The database settings (`MUSHROOM_DATABASE_URL`, `MUSHROOM_RETENTION_DAYS`) are shared by every
# service: mushroom_common.settings reads them with the storage settings.
StoreSettings = SharedSettings


class DatabaseUrlError(ValueError):
    """A database URL that is neither SQLite nor PostgreSQL, or not a URL at all."""


def normalise_url(url: str) -> str:
    """The URL with the driver this package uses (`postgresql://` -> `postgresql+psycopg://`).

    Raises:
        DatabaseUrlError: the URL is malformed or names another database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError("MUSHROOM_DATABASE_URL is not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.render_as_string(hide_password=False)
    if backend in _POSTGRES_DRIVERS:
        return parsed.set(drivername=_POSTGRES_DRIVERS[backend]).render_as_string(
            hide_password=False
        )
    raise DatabaseUrlError(
        f"MUSHROOM_DATABASE_URL must be sqlite:/// or postgresql://, not {backend}://"
    )


def sqlite_url(path: Path) -> str:
    """The SQLite URL of a file."""
    return URL.create("sqlite", database=str(path.resolve())).render_as_string()


def resolve_database_url(
    explicit: str | None = None,
    storage: Storage | None = None,
    settings: StoreSettings | None = None,
) -> str:
    """The database URL every service uses.

    Args:
        explicit: a URL given on a command line; wins over the environment.
        storage: the storage root whose local folder holds the default SQLite file
            (None opens `MUSHROOM_STORAGE_URI`).
        settings: the store settings (None reads the environment).

    Returns:
        A normalised SQLAlchemy URL: the explicit one, else `MUSHROOM_DATABASE_URL`, else SQLite
        at `<local storage root>/db/mushroom.sqlite3` (or the user cache when storage is remote).
    """
    chosen = explicit or (settings or StoreSettings()).database_url
    if chosen:
        return normalise_url(chosen)
    local = (storage or open_storage()).local_path(DEFAULT_SQLITE_KEY)
    if local is None:
        logger.warning(
            "storage is not a local folder and MUSHROOM_DATABASE_URL is unset: predictions and "
            "feedback go to a SQLite file in this machine's cache (%s)",
            FALLBACK_SQLITE_PATH,
        )
        local = FALLBACK_SQLITE_PATH
    return sqlite_url(local)


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"
