"""The records the store reads and writes (plain pydantic, no database types)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

FEEDBACK_PHOTOS_PREFIX = "feedback/photos"


class PredictionRecord(BaseModel):
    """One answered /predict request."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    request_id: str
    created_at: datetime
    photo_sha256: str
    model_name: str
    model_version: str
    verdict: str
    top_species: str | None
    top_probability: float | None
    mushroom_score: float | None


class FeedbackRecord(BaseModel):
    """What a person said about one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    created_at: datetime
    request_id: str
    idempotency_key: str
    correct: bool
    species: str | None
    comment: str | None
    share_photo: bool
    photo_key: str | None


class PruneResult(BaseModel):
    """What one prune deleted."""

    model_config = ConfigDict(frozen=True)

    cutoff: datetime
    predictions: int
    feedback: int
