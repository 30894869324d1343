"""API settings, read from `API_*` environment variables (and the shared `MUSHROOM_STORAGE_URI`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_TOKENS = frozenset({"", "changeme", "change-me", "secret", "admin", "token", "dev"})
CONTAINER_DEMO_DIR = Path("/app/models/demo")
CONTAINER_FRONTEND_DIR = Path("/app/frontend-react/dist")


def _find_up(relative: str) -> Path | None:
    """The first `<ancestor>/<relative>` that exists, walking up from this file."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / relative
        if candidate.exists():
            return candidate
    return None


def default_fallback_bundle_dir() -> Path:
    """The repository's demo bundle (`models/demo`), or the container's copy of it."""
    return _find_up("models/demo") or CONTAINER_DEMO_DIR


def default_frontend_dir() -> Path | None:
    """The built frontend (`frontend-react/dist`) when it exists."""
    found = _find_up("frontend-react/dist")
    if found is not None:
        return found
    return CONTAINER_FRONTEND_DIR if CONTAINER_FRONTEND_DIR.is_dir() else None


class Settings(BaseSettings):
    """Every knob of the API; each one an environment variable with the `API_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="API_", extra="ignore", protected_namespaces=(), populate_by_name=True
    )

    env: Literal["development", "production"] = Field(
        "development", description="production refuses an empty or placeholder admin token"
    )
    storage_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MUSHROOM_STORAGE_URI", "API_STORAGE_URI"),
        description="storage root (shared MUSHROOM_STORAGE_URI); None means ./mushroom-data",
    )
    model_name: str = Field(
        "mushroom-classifier",
        description="registry name whose champion is served (model-training's export.name)",
    )
    fallback_bundle_dir: Path = Field(
        default_factory=default_fallback_bundle_dir,
        description="bundle served when the registry has no champion (the demo model)",
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "mushroom-api" / "models",
        description="where champion bundles are downloaded to",
    )
    interpreter_pool_size: int = Field(
        2, ge=1, le=64, description="LiteRT interpreters (and model worker threads)"
    )
    interpreter_threads: int = Field(1, ge=1, le=64, description="CPU threads per interpreter")
    danger_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="override of the bundle's tuned danger threshold (summed deadly/poisonous "
        "probability that means 'dangerous')",
    )
    edible_threshold: float | None = Field(
        None, gt=0, le=1, description="override of the bundle's tuned edible threshold"
    )
    unseen_lookalike_blocks_edible: bool | None = Field(
        None,
        description="answer 'uncertain' instead of 'edible' when the top species has a dangerous "
        "look-alike the model was not trained on (override of the bundle's rule)",
    )
    detector_threshold: float | None = Field(
        None, ge=0, le=1, description="override of the bundle's mushroom_detector threshold"
    )
    max_upload_bytes: int = Field(15 * 1024 * 1024, ge=1, description="largest accepted photo")
    max_pixels: int = Field(40_000_000, ge=1, description="largest accepted width x height")
    admin_token: str = Field("", description="bearer token of POST /admin/reload")
    reload_poll_seconds: float = Field(
        0, ge=0, description="check the champion pointer this often (0 = no watcher)"
    )
    feedback_db_path: Path | None = Field(
        None, description="SQLite feedback database; default <local storage>/feedback/..."
    )
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:5173", "http://127.0.0.1:5173"],
        description="origins allowed to call the API from a browser (JSON list)",
    )
    rate_limit_per_minute: int = Field(
        60, ge=0, description="requests per client IP and minute on model routes (0 = off)"
    )
    frontend_dir: Path | None = Field(
        default_factory=default_frontend_dir, description="built frontend served at /"
    )
    explain_grid: int = Field(7, ge=2, le=16, description="occlusion grid size of /explain")
    log_predictions: bool = Field(True, description="log every /predict to the feedback database")

    @field_validator("frontend_dir", "feedback_db_path", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _refuse_placeholder_token(self) -> Settings:
        if self.env == "production" and self.admin_token.strip().lower() in PLACEHOLDER_TOKENS:
            raise ValueError(
                "API_ADMIN_TOKEN is empty or a placeholder: set a real secret in production"
            )
        return self

    @property
    def admin_enabled(self) -> bool:
        """Whether /admin/reload accepts any token at all."""
        return bool(self.admin_token)


@cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return Settings()
