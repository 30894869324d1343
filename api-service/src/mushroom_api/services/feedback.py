"""What people say about answers, and the photos they agree to share."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from fastapi import HTTPException, UploadFile, status
from starlette.concurrency import run_in_threadpool

from mushroom_api.config import Settings
from mushroom_api.schemas import FeedbackCreate, FeedbackPublic
from mushroom_api.services.identify import image_http_error, read_upload
from mushroom_api.services.imaging import ImageError, strip_metadata
from mushroom_common.catalog import Catalog
from mushroom_common.feedback import FEEDBACK_PHOTOS_PREFIX, FeedbackRecord, FeedbackStore
from mushroom_common.storage import Storage


def to_public(record: FeedbackRecord) -> FeedbackPublic:
    """The public view of a stored feedback."""
    return FeedbackPublic(
        id=record.id,
        request_id=record.request_id,
        correct=record.correct,
        species=record.species,
        photo_stored=record.photo_key is not None,
    )


def _create(body: FeedbackCreate, store: FeedbackStore, catalog: Catalog) -> FeedbackPublic:
    if store.get_prediction(body.request_id) is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "There is no answer with this request_id to give feedback on.",
        )
    species = body.species
    if species is not None:
        resolved = catalog.resolve(species)
        if resolved is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{species!r} is not a species in the catalog; leave it empty if unsure.",
            )
        species = resolved.id
    record = FeedbackRecord(
        id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        request_id=body.request_id,
        correct=body.correct,
        species=species,
        comment=body.comment,
        share_photo=body.share_photo,
        photo_key=None,
    )
    store.add_feedback(record)
    return to_public(record)


async def create_feedback(
    body: FeedbackCreate, store: FeedbackStore, catalog: Catalog
) -> FeedbackPublic:
    """Store one feedback about a logged prediction."""
    return await run_in_threadpool(_create, body, store, catalog)


def _jpeg_bytes(data: bytes, settings: Settings) -> bytes:
    """The photo as a JPEG re-encoded from its pixels: no EXIF GPS, camera or other metadata."""
    return strip_metadata(
        data,
        settings.max_pixels,
        min_side=settings.min_image_side,
        budget_bytes=settings.decode_budget_bytes,
    )


def _store_photo(
    feedback_id: str, data: bytes, store: FeedbackStore, storage: Storage, settings: Settings
) -> FeedbackPublic:
    record = store.get_feedback(feedback_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no feedback with this id.")
    if not record.share_photo:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This feedback did not agree to share the photo, so the photo is not stored.",
        )
    try:
        jpeg = _jpeg_bytes(data, settings)
    except ImageError as exc:
        raise image_http_error(exc) from exc
    prediction = store.get_prediction(record.request_id)
    digest = hashlib.sha256(data).hexdigest()
    if prediction is None or prediction.photo_sha256 != digest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "This is not the photo that was identified; send the same file again.",
        )
    key = f"{FEEDBACK_PHOTOS_PREFIX}/{digest}.jpg"
    storage.write_bytes_if_absent(key, jpeg, "image/jpeg")
    store.set_feedback_photo(feedback_id, key)
    stored = store.get_feedback(feedback_id)
    return to_public(stored if stored is not None else record)


async def store_feedback_photo(
    feedback_id: str,
    upload: UploadFile,
    store: FeedbackStore,
    storage: Storage,
    settings: Settings,
) -> FeedbackPublic:
    """Store the shared photo of a feedback under `feedback/photos/<sha256>.jpg`."""
    data = await read_upload(upload, settings.max_upload_bytes)
    return await run_in_threadpool(_store_photo, feedback_id, data, store, storage, settings)
