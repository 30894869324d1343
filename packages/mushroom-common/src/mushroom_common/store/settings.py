"""The one place that reads the database settings every service shares (`MUSHROOM_DATABASE_URL`)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mushroom_common.storage import Storage, open_storage

logger = logging.getLogger(__name__)

DEFAULT_SQLITE_KEY = "db/mushroom.sqlite3"
FALLBACK_SQLITE_PATH = Path.home() / ".cache" / "mushroom-id" / "mushroom.sqlite3"
# Plain `postgresql://` (what Cloud SQL, psql and most tutorials write) means psycopg 3 here.
_POSTGRES_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


class StoreSettings(BaseSettings):
    """Settings of the prediction and feedback store, shared by every service."""

    model_config = SettingsConfigDict(env_prefix="MUSHROOM_", extra="ignore")

    database_url: str | None = Field(
        None,
        description="prediction and feedback database: sqlite:///path or postgresql://user:pass@"
        "host/db; default SQLite at <local storage root>/db/mushroom.sqlite3",
    )
    retention_days: int = Field(
        90,
        ge=1,
        description="`mushroom-db prune` deletes predictions and feedback older than this",
    )


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
