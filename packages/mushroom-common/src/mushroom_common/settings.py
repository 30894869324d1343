"""The settings every service shares, read from the environment in this one place.

Each service's `Settings` (api `config.py`, training and pipeline `config.py`, collector
`config.py`) subclasses `SharedSettings`, so the shared variables keep one name and one rule
everywhere:

- the storage root: a command's `--storage` option (the `explicit` of `storage_uri_or`), else
  `MUSHROOM_STORAGE_URI`, else `./mushroom-data`;
- the runs folder of training: `TRAIN_RUNS_DIR`, else `<local storage root>/runs` (for `gs://`
  storage, `./mushroom-data/runs`);
- the database: `MUSHROOM_DATABASE_URL`, else SQLite under the local storage root
  (`mushroom_common.store.resolve_database_url`).

Every shared field names its variable with `validation_alias`, so a service's own prefix
(`API_`, `TRAIN_` ...) never renames it; `populate_by_name` lets tests pass fields by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORAGE_URI = "./mushroom-data"
RUNS_FOLDER = "runs"


def local_root(uri: str) -> Path | None:
    """The local folder of a storage URI (a path or file://), None for gs://."""
    parsed = urlparse(uri)
    if parsed.scheme == "gs":
        return None
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(uri)


def runs_dir_for(storage_uri: str) -> Path:
    """Where training runs go by default: beside the local storage, or ./mushroom-data/runs."""
    return (local_root(storage_uri) or Path(DEFAULT_STORAGE_URI)) / RUNS_FOLDER


def default_runs_dir(data: dict[str, Any]) -> Path:
    """`runs_dir_for` the storage URI among already validated settings fields."""
    return runs_dir_for(str(data.get("storage_uri") or DEFAULT_STORAGE_URI))


class SharedSettings(BaseSettings):
    """What every service shares: storage, its retries, the GCS emulator, the database."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    storage_uri: str = Field(
        DEFAULT_STORAGE_URI,
        validation_alias="MUSHROOM_STORAGE_URI",
        description="storage root: a path, file:///abs/path or gs://bucket/prefix (services "
        "default to ./mushroom-data; docker compose uses the named volume at /data)",
    )
    storage_retry_deadline_s: float = Field(
        30.0,
        gt=0,
        validation_alias="MUSHROOM_STORAGE_RETRY_DEADLINE_S",
        description="seconds to keep retrying transient GCS errors",
    )
    storage_emulator_host: str | None = Field(
        None,
        validation_alias="STORAGE_EMULATOR_HOST",
        description="point gs:// at a GCS emulator, e.g. http://gcs-emulator:9023 (profile gcs); "
        "leave unset for real Google Cloud Storage",
    )
    google_cloud_project: str | None = Field(
        None,
        validation_alias="GOOGLE_CLOUD_PROJECT",
        description="project id sent to the GCS emulator, default 'emulator' (real GCS uses the "
        "credentials')",
    )
    database_url: str | None = Field(
        None,
        validation_alias="MUSHROOM_DATABASE_URL",
        description="prediction and feedback database: sqlite:///path or postgresql://user:pass@"
        "host/db; default SQLite at <local storage root>/db/mushroom.sqlite3",
    )
    retention_days: int = Field(
        90,
        ge=1,
        validation_alias="MUSHROOM_RETENTION_DAYS",
        description="`mushroom-db prune` deletes predictions and feedback older than this",
    )

    def storage_uri_or(self, explicit: str | None) -> str:
        """The storage root: `explicit` (a command's --storage) when given, else the setting."""
        return explicit or self.storage_uri
