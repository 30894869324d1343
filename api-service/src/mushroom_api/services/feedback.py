"""What people say about answers, and the photos they agree to share.

Feedback is idempotent per answer: one row per (request_id, idempotency key), the key being the
client's `Idempotency-Key` or, without one, a hash of the feedback itself, so a replayed request
returns the stored feedback instead of adding a row. Answers older than the feedback window
(`API_FEEDBACK_WINDOW_HOURS`) take no feedback.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool

from mushroom_api.config import Settings
from mushroom_api.schemas import FeedbackCreate, FeedbackPublic
from mushroom_api.services.errors import (
    FeedbackWindowClosedError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotFoundError,
    NotPermittedError,
)
from mushroom_api.services.imaging import abandonable, strip_metadata
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_api.services.request_ids import signed_at
from mushroom_common.catalog import Catalog
from mushroom_common.storage import Storage
from mushroom_common.store import (
    FEEDBACK_PHOTOS_PREFIX,
    FeedbackRecord,
    MissingPredictionError,
    PredictionRecord,
    PredictionStore,
)

NO_ANSWER = "There is no answer with this request_id to give feedback on."
_CONTENT_FIELDS = ("correct", "species", "comment", "share_photo")


def to_public(record: FeedbackRecord) -> FeedbackPublic:
    """The public view of a stored feedback."""
    return FeedbackPublic(
        id=record.id,
        request_id=record.request_id,
        correct=record.correct,
        species=record.species,
        photo_stored=record.photo_key is not None,
    )


def window_text(hours: float) -> str:
    """The feedback window in words ("7 days", "36 hours")."""
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:.0f} days"
    return "1 hour" if hours == 1 else f"{hours:g} hours"


def _find_prediction(
    request_id: str, store: PredictionStore, log: PredictionLog | None
) -> PredictionRecord | None:
    """The logged prediction, writing it first if it is still in this process's queue."""
    prediction = store.get_prediction(request_id)
    if prediction is None and log is not None:
        prediction = log.pending(request_id)
        if prediction is not None:
            store.add_predictions([prediction])
    return prediction


def _content_key(body: FeedbackCreate, species: str | None) -> str:
    """The idempotency key of feedback sent without one: the same feedback, the same key."""
    content: dict[str, object] = {
        "correct": body.correct,
        "species": species,
        "comment": body.comment,
        "share_photo": body.share_photo,
    }
    return "content-" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _create(
    body: FeedbackCreate,
    idempotency_key: str | None,
    store: PredictionStore,
    log: PredictionLog | None,
    catalog: Catalog,
    settings: Settings,
) -> tuple[FeedbackPublic, bool]:
    prediction = _find_prediction(body.request_id, store, log)
    # An id this service signed is an answer even before its prediction is logged (another
    # replica may still be writing it): the feedback is stored now and joins it when it lands.
    answered_at = (
        prediction.created_at
        if prediction is not None
        else signed_at(settings.request_id_key, body.request_id)
    )
    if answered_at is None:
        raise NotFoundError(NO_ANSWER)
    window = timedelta(hours=settings.feedback_window_hours)
    if datetime.now(UTC) - answered_at > window:
        text = window_text(settings.feedback_window_hours)
        raise FeedbackWindowClosedError(
            f"This answer is more than {text} old; feedback is accepted for {text} after an answer."
        )
    species = body.species
    if species is not None:
        resolved = catalog.resolve(species)
        if resolved is None:
            raise InvalidInputError(
                f"{species!r} is not a species in the catalog; leave it empty if unsure."
            )
        species = resolved.id
    record = FeedbackRecord(
        id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        request_id=body.request_id,
        idempotency_key=idempotency_key or _content_key(body, species),
        correct=body.correct,
        species=species,
        comment=body.comment,
        share_photo=body.share_photo,
        photo_key=None,
    )
    try:
        stored, created = store.add_feedback(record, require_prediction=prediction is not None)
    except MissingPredictionError as exc:
        # Pruned between the lookup and the insert.
        raise NotFoundError(NO_ANSWER) from exc
    if not created and any(
        getattr(stored, name) != getattr(record, name) for name in _CONTENT_FIELDS
    ):
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used for different feedback on this answer; "
            "send the new feedback with a new key."
        )
    return to_public(stored), created


async def create_feedback(
    body: FeedbackCreate,
    idempotency_key: str | None,
    store: PredictionStore,
    log: PredictionLog | None,
    catalog: Catalog,
    settings: Settings,
) -> tuple[FeedbackPublic, bool]:
    """Store one feedback about a logged prediction; returns it and whether it is new."""
    return await run_in_threadpool(_create, body, idempotency_key, store, log, catalog, settings)


def _jpeg_bytes(data: bytes, settings: Settings) -> bytes:
    """The photo as a JPEG re-encoded from its pixels: no EXIF GPS, camera or other metadata."""
    return strip_metadata(
        data,
        settings.max_pixels,
        min_side=settings.min_image_side,
        budget_bytes=settings.decode_budget_bytes,
    )


def _store_photo(
    feedback_id: str, data: bytes, store: PredictionStore, storage: Storage, settings: Settings
) -> FeedbackPublic:
    record = store.get_feedback(feedback_id)
    if record is None:
        raise NotFoundError("There is no feedback with this id.")
    if not record.share_photo:
        raise NotPermittedError(
            "This feedback did not agree to share the photo, so the photo is not stored."
        )
    # Cheap checks first: only the photo that was identified (same hash) is ever decoded.
    prediction = store.get_prediction(record.request_id)
    digest = hashlib.sha256(data).hexdigest()
    if prediction is None or prediction.photo_sha256 != digest:
        raise InvalidInputError(
            "This is not the photo that was identified; send the same file again."
        )
    jpeg = _jpeg_bytes(data, settings)  # ImageError: a domain error the routes map
    key = f"{FEEDBACK_PHOTOS_PREFIX}/{digest}.jpg"
    storage.write_bytes_if_absent(key, jpeg, "image/jpeg")
    stored = store.set_feedback_photo(feedback_id, key)
    return to_public(stored if stored is not None else record)


async def store_feedback_photo(
    feedback_id: str,
    data: bytes,
    store: PredictionStore,
    storage: Storage,
    settings: Settings,
) -> FeedbackPublic:
    """Store the shared photo of a feedback under `feedback/photos/<sha256>.jpg`."""
    return await abandonable(_store_photo, feedback_id, data, store, storage, settings)
