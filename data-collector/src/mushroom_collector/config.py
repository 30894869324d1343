"""Collector settings, read from `COLLECTOR_*` environment variables."""

from __future__ import annotations

from functools import cache

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mushroom_common.settings import SharedSettings

DEFAULT_USER_AGENT = (
    "mushroom-id-collector/0.1 (open-source mushroom identification app; "
    "collects research-grade, CC-licensed photos)"
)


class Settings(SharedSettings):
    """Every knob of the collector, each an environment variable with the `COLLECTOR_` prefix
    (the shared settings keep their `MUSHROOM_` names)."""

    model_config = SettingsConfigDict(env_prefix="COLLECTOR_", extra="ignore")

    inat_base_url: str = Field(
        "https://api.inaturalist.org/v1", description="iNaturalist API v1 base URL"
    )
    requests_per_minute: int = Field(
        60,
        ge=1,
        le=60,
        description="most requests in any rate window (iNaturalist asks for <= 60/min)",
    )
    rate_window_s: float = Field(
        60.0, gt=0, description="length of the sliding rate-limit window in seconds"
    )
    licenses: str = Field(
        "cc0,cc-by,cc-by-nc", description="comma-separated photo licence codes that may be stored"
    )
    photo_size: str = Field(
        "medium", description="iNaturalist photo size: small, medium, large, original"
    )
    user_agent: str = Field(DEFAULT_USER_AGENT, description="User-Agent sent to iNaturalist")
    http_timeout_s: float = Field(30.0, gt=0, description="timeout of one HTTP request")
    max_retries: int = Field(
        5, ge=0, description="retries of one request on 429, 5xx or a network error"
    )
    backoff_base_s: float = Field(2.0, ge=0, description="first retry delay; doubles each retry")
    backoff_max_s: float = Field(120.0, ge=0, description="longest wait between two retries")
    max_per_species: int = Field(500, ge=1, description="default photos to collect per species")
    min_image_side: int = Field(
        64, ge=1, description="build drops photos whose shorter side is below this"
    )
    near_duplicate_distance: int = Field(
        8,
        ge=0,
        le=64,
        description="pHash Hamming distance at or below which two photos are the same photo",
    )
    group_distance: int = Field(
        10, ge=0, le=64, description="pHash distance at or below which photos share a split group"
    )
    seed: int = Field(42, description="seed of the grouped train/val/test split")
    train_fraction: float = Field(0.70, gt=0, lt=1)
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.15, ge=0, lt=1)

    @field_validator("licenses")
    @classmethod
    def _normalise_licenses(cls, value: str) -> str:
        codes = [c.strip().lower() for c in value.split(",") if c.strip()]
        if not codes:
            raise ValueError("at least one licence code is needed")
        return ",".join(codes)

    @property
    def license_codes(self) -> list[str]:
        """Allowed licence codes, lower case."""
        return self.licenses.split(",")


@cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return Settings()
