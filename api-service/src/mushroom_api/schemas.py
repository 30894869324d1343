"""Request and response models: the names and shapes of docs/api-contract.md."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.catalog import Edibility
from mushroom_common.verdict import (
    CautionLookalikePublic,
    CautionPublic,
    GenusPredictionPublic,
    LookalikePublic,
    SpeciesPredictionPublic,
    Verdict,
)

__all__ = [
    "DISCLAIMER",
    "CautionLookalikePublic",
    "CautionPublic",
    "ErrorPublic",
    "FeedbackCreate",
    "FeedbackPublic",
    "GenusPredictionPublic",
    "IdentificationPublic",
    "LookalikePublic",
    "ModelInfoPublic",
    "ModelRefPublic",
    "SpeciesPredictionPublic",
    "SpeciesPublic",
    "StatusPublic",
    "Verdict",
]

DISCLAIMER = (
    "No app can tell whether a mushroom is safe to eat. Never eat a wild mushroom because an "
    "app named it: have it checked in person by an expert."
)


class ModelRefPublic(BaseModel):
    """Which model answered."""

    name: str
    version: str


class IdentificationPublic(BaseModel):
    """The answer of POST /predict."""

    request_id: str = Field(description="uuid4 hex; quote it in POST /feedback")
    verdict: Verdict
    message: str = Field(description="one plain sentence for a person")
    disclaimer: str = Field(description="always present: no app can tell if a mushroom is safe")
    predictions: list[SpeciesPredictionPublic] = Field(description="best first, length top_k")
    genera: list[GenusPredictionPublic] = Field(
        description="the most likely genera (summed species probabilities), best first"
    )
    possibly_unknown_species: bool = Field(
        description="the photo looks like a species the model never learned"
    )
    unknown_species_message: str | None = Field(
        None,
        description="a sentence for the person when possibly_unknown_species (null otherwise)",
    )
    caution: CautionPublic | None = Field(
        None,
        description="with verdict 'uncertain': do not eat it, it could be these deadly or "
        "poisonous species (the telling feature and the photo that shows it)",
    )
    lookalikes: list[LookalikePublic] = Field(
        description="the top species' look-alikes, dangerous ones first"
    )
    mushroom_score: float | None = Field(
        ge=0,
        le=1,
        description="how much the photo looks like a mushroom at all (None: no detector)",
    )
    model: ModelRefPublic


class FeedbackCreate(BaseModel):
    """What a person says about an answer."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    correct: bool
    species: str | None = Field(
        None, max_length=100, description="catalog id of the right species, if known"
    )
    comment: str | None = Field(None, max_length=1000)
    share_photo: bool = Field(False, description="the person agrees that the photo may be stored")


class FeedbackPublic(BaseModel):
    """A stored feedback."""

    id: str
    request_id: str
    correct: bool
    species: str | None
    photo_stored: bool


class SpeciesPublic(BaseModel):
    """A catalog entry."""

    id: str
    scientific_name: str
    common_names: dict[str, list[str]]
    edibility: Edibility
    edibility_note: str | None
    toxins: list[str]
    symptoms: str
    lookalikes: list[LookalikePublic]
    sources: list[str]
    in_model: bool = Field(description="whether the served model can recognise it")


class ModelInfoPublic(BaseModel):
    """The served bundle's metadata and metrics."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    labels: list[str]
    input_size: tuple[int, int] = Field(description="height, width")
    dataset_version: str
    created_at: datetime
    metrics: dict[str, float]
    evaluation: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="the metrics by photo set: `test` (the dataset version's test split, photos "
        "like the training photos), `field_test` (other photographers' photos, never tuned on) "
        "and `field_val` (field photos the thresholds were tuned on); each with top1, top5, "
        "genus_top1 and the verdict numbers (empty for bundles measured before the field test)",
    )
    variant: str
    data_status: str
    source: Literal["registry", "cache", "demo_fallback"] = Field(
        description="registry: the champion; cache: the last champion this server had, while "
        "the registry cannot be read; demo_fallback: the bundled demo model (the registry has "
        "no champion, or none could be served at startup)"
    )
    degraded_reason: str | None = Field(
        None, description="why this is not the registry's champion, when it should be"
    )


class StatusPublic(BaseModel):
    """A liveness or readiness answer."""

    status: str = Field(description='"ok", or "degraded" when a fallback model is served')
    reason: str | None = Field(None, description="why the server is degraded, in a sentence")


class ErrorPublic(BaseModel):
    """Every error body."""

    detail: str = Field(description="one sentence a person understands")
