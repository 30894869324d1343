"""Pipeline settings, read from `PIPELINE_*` environment variables."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mushroom_common.settings import SharedSettings

DEMO_CONFIG = "model-training/configs/demo.yaml"
CONTAINER_DEMO_CONFIG = Path("/app/model-training/configs/demo.yaml")


def find_up(relative: str, start: Path | None = None) -> Path | None:
    """The first `<ancestor>/<relative>` that exists, walking up from start (this file)."""
    for parent in (start or Path(__file__)).resolve().parents:
        candidate = parent / relative
        if candidate.exists():
            return candidate
    return None


def default_train_config() -> Path | None:
    """The training engineer's demo config when the repository (or the image) has it."""
    found = find_up(DEMO_CONFIG)
    if found is not None:
        return found
    return CONTAINER_DEMO_CONFIG if CONTAINER_DEMO_CONFIG.is_file() else None


class Settings(SharedSettings):
    """Every knob of the pipeline; each one an environment variable with the `PIPELINE_` prefix
    (the shared settings keep their `MUSHROOM_` names)."""

    model_config = SettingsConfigDict(
        env_prefix="PIPELINE_", extra="ignore", protected_namespaces=()
    )

    train_config: Path | None = Field(
        default_factory=default_train_config,
        description="training config YAML; default model-training/configs/demo.yaml when present",
    )
    model_name: str | None = Field(
        None, description="registry name of the bundle; default: the config's export.name"
    )
    field_data_root: Path | None = Field(
        None,
        description="shared data folder with the field photos (web-species/, nordic-field/, "
        "field-extra/): the field step tunes the verdict thresholds on its field validation "
        "photos and promote judges that bundle; unset: no field step",
    )
    api_url: str | None = Field(None, description="base URL of a running API to reload")
    api_admin_token: str = Field("", description="bearer token of the API's POST /admin/reload")
    api_timeout_s: float = Field(120.0, gt=0, description="timeout of one call to the API")
    code_version: str | None = Field(
        None,
        description="code version in every step key; default: package versions + git revision",
    )
    # Drift monitoring thresholds (documented in pipeline/README.md).
    drift_window: str = Field("day", pattern="^(hour|day|week)$", description="window length")
    drift_psi_threshold: float = Field(
        0.2, gt=0, description="population stability index above which confidence drifted"
    )
    drift_ks_pvalue: float = Field(
        0.01, gt=0, lt=1, description="two-sample KS p-value below which confidence drifted"
    )
    drift_min_predictions: int = Field(
        100,
        ge=1,
        description="windows with fewer predictions are reported but never flagged (PSI over "
        "ten bins reads about 9/n on two samples of one distribution: small windows look shifted)",
    )
    drift_max_uncertain_share: float = Field(
        0.5, ge=0, le=1, description="flag a window whose share of 'uncertain' is above this"
    )
    drift_max_not_a_mushroom_share: float = Field(
        0.2, ge=0, le=1, description="flag a window whose share of 'not_a_mushroom' is above this"
    )
    drift_reference_photos: int = Field(
        500, ge=1, description="most test-split photos run through the model for the reference"
    )
    # The image of the Vertex AI (KFP v2) pipeline's components (`mushroom-pipeline step`).
    training_image: str = Field(
        "europe-west1-docker.pkg.dev/mushroom-id/mushroom/mushroom-trainer:latest",
        description="image of every Vertex AI pipeline step: the training image, which carries "
        "mushroom-pipeline",
    )


@cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return Settings()
