"""The prediction and feedback store: written by the API, read by the collector and drift monitor.

One database for every service and replica, chosen by `MUSHROOM_DATABASE_URL` (SQLite or
PostgreSQL; default SQLite at `<local storage root>/db/mushroom.sqlite3`). Alembic migrations ship
inside this package and run at API start or with `mushroom-db upgrade`. Shared photos are stored
through `Storage` under `feedback/photos/<sha256>.jpg`.
"""

from __future__ import annotations

from mushroom_common.store.records import (
    FEEDBACK_PHOTOS_PREFIX,
    FeedbackRecord,
    PredictionRecord,
    PruneResult,
)
from mushroom_common.store.settings import (
    DatabaseUrlError,
    StoreSettings,
    redact,
    resolve_database_url,
)
from mushroom_common.store.store import (
    MissingPredictionError,
    PredictionStore,
    StoreError,
    StoreFileGoneError,
    StoreSchemaError,
    StoreUnavailableError,
)

__all__ = [
    "FEEDBACK_PHOTOS_PREFIX",
    "DatabaseUrlError",
    "FeedbackRecord",
    "MissingPredictionError",
    "PredictionRecord",
    "PredictionStore",
    "PruneResult",
    "StoreError",
    "StoreFileGoneError",
    "StoreSchemaError",
    "StoreSettings",
    "StoreUnavailableError",
    "open_store",
    "redact",
    "resolve_database_url",
]


def open_store(url: str | None = None, *, upgrade: bool = False) -> PredictionStore:
    """The store at `url`, else `MUSHROOM_DATABASE_URL`, else the local SQLite default.

    Args:
        url: explicit database URL (a command-line option).
        upgrade: apply pending migrations now (the API and `mushroom-db upgrade` do); readers
            leave it False and get `StoreSchemaError` from `require_schema()` on an old database.
    """
    store = PredictionStore(resolve_database_url(url))
    if upgrade:
        store.upgrade()
    return store
