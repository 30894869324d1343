"""API settings, read from `API_*` environment variables.

The shared `MUSHROOM_STORAGE_URI` and `MUSHROOM_DATABASE_URL` are read by mushroom_common.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mushroom_common.observation import MAX_PHOTOS

PLACEHOLDER_TOKENS = frozenset({"", "changeme", "change-me", "secret", "admin", "token", "dev"})
MIN_ADMIN_TOKEN_LENGTH = 32
MIN_ADMIN_TOKEN_DISTINCT = 12
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


def weak_token_problem(token: str) -> str | None:
    """Why a production admin token is too weak to guess-proof, or None when it is fine.

    A token is believed random when it is long and uses many different characters: what
    `openssl rand -hex 32` or `secrets.token_urlsafe(32)` make, and words and repeats are not.
    """
    stripped = token.strip()
    if stripped.lower() in PLACEHOLDER_TOKENS:
        return "is empty or a placeholder"
    if len(stripped) < MIN_ADMIN_TOKEN_LENGTH:
        return f"is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters"
    if len(set(stripped)) < MIN_ADMIN_TOKEN_DISTINCT:
        return "repeats too few characters to be random"
    return None


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
    max_photos: int = Field(
        MAX_PHOTOS, ge=1, le=MAX_PHOTOS, description="most photos one /predict observation takes"
    )
    max_observation_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1,
        description="largest total size of the photos of one /predict request (each photo "
        "also keeps max_upload_bytes, max_pixels and the decode budget)",
    )
    max_pixels: int = Field(40_000_000, ge=1, description="largest accepted width x height")
    admin_token: str = Field("", description="bearer token of POST /admin/reload")
    reload_poll_seconds: float = Field(
        0, ge=0, description="check the champion pointer this often (0 = no watcher)"
    )
    feedback_window_hours: float = Field(
        168,
        gt=0,
        description="feedback is accepted for this long after an answer (later: 410 with a "
        "sentence); keep it below MUSHROOM_RETENTION_DAYS",
    )
    prediction_log_queue: int = Field(
        1000,
        ge=1,
        description="predictions waiting for the database; beyond it they are dropped (counted "
        "in /metrics), never delaying an answer",
    )
    store_timeout_s: float = Field(
        3.0, gt=0, description="longest wait of the log writer for a database lock or connection"
    )
    store_stall_s: float = Field(
        2.0, gt=0, description="/readyz fails while one database write takes longer than this"
    )
    store_probe_s: float = Field(
        10.0, gt=0, description="when idle, prove the database takes writes this often"
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
    log_predictions: bool = Field(
        True, description="log every /predict to the database (needed for feedback and drift)"
    )
    min_image_side: int = Field(
        64, ge=1, description="smallest accepted shorter side in pixels (the collector's rule)"
    )
    decode_budget_bytes: int = Field(
        96 * 1024 * 1024,
        ge=1,
        description="largest decoded image one request may hold in memory; bigger photos of "
        "formats that cannot be decoded at reduced size (PNG, WebP, HEIC) are refused",
    )
    decode_total_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1,
        description="decoded image memory all requests together may hold; others wait for it",
    )
    upload_budget_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1,
        description="request bodies all uploads together may hold in memory (503 beyond)",
    )
    storage_workers: int = Field(
        4, ge=1, le=64, description="threads for storage calls on the request path"
    )
    storage_timeout_s: float = Field(
        2.0,
        gt=0,
        description="longest a request waits for storage (shorter than the 3 s probe timeout)",
    )
    explain_pool_size: int = Field(
        1,
        ge=0,
        le=16,
        description="interpreters of /explain only, so it never queues /predict (0 = share)",
    )
    explain_queue: int = Field(
        2, ge=1, description="/explain requests running or waiting at once (503 beyond)"
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="largest request line plus headers (bigger: 400)"
    )
    header_timeout_s: int = Field(
        5, ge=1, description="seconds to send the headers of a request, and idle keep-alive"
    )
    max_connections: int = Field(
        1000, ge=1, description="concurrent connections (503 beyond; capped by open files)"
    )
    forwarded_allow_ips: str = Field(
        "",
        description="comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed "
        "(empty: nobody's, so the client address is the socket's)",
    )
    rate_limit_clients: int = Field(
        100_000, ge=1, description="clients the rate limiter remembers (oldest forgotten)"
    )

    @field_validator("frontend_dir", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _refuse_weak_token(self) -> Settings:
        if self.env == "production":
            problem = weak_token_problem(self.admin_token)
            if problem is not None:
                raise ValueError(f"API_ADMIN_TOKEN {problem}: set a real secret in production")
        return self

    @property
    def trusted_proxies(self) -> list[str]:
        """The proxies whose forwarded headers say who the client is."""
        return [part.strip() for part in self.forwarded_allow_ips.split(",") if part.strip()]

    @property
    def admin_enabled(self) -> bool:
        """Whether /admin/reload accepts any token at all."""
        return bool(self.admin_token)


@cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return Settings()
