"""Photos people shared through the app's feedback, as collected photos awaiting review.

A feedback record becomes a photo when the person agreed to share it (`share_photo`) and it
carries a label: the species they corrected the answer to, or the predicted species when they
said the answer was right. Every such photo is stored re-encoded (no EXIF, so no GPS) with
source "feedback" and `needs_review=True` until a person approves it (`--reviewed` for all,
or a review file listing feedback ids); build never puts unreviewed feedback in val or test.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mushroom_collector.images import InvalidImageError, normalise_photo
from mushroom_collector.progress import progress_bar
from mushroom_collector.records import load_records, now_utc, store_photo, write_record
from mushroom_common.catalog import Catalog
from mushroom_common.dataset import CollectedPhoto
from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_common.store import FeedbackRecord, PredictionStore

logger = logging.getLogger(__name__)

FEEDBACK_LICENSE = "shared-by-user"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class FeedbackImportSummary:
    """What one feedback import did."""

    imported: int = 0
    approved: int = 0
    already_imported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def read_review_file(path: Path) -> set[str]:
    """Feedback ids approved by a reviewer: one per line, `#` starts a comment."""
    ids = set()
    for line in path.read_text("utf-8").splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            ids.add(value)
    return ids


def feedback_record_id(feedback_id: str) -> str:
    """The collected record id of a feedback (safe as a storage key)."""
    return f"feedback-{_UNSAFE.sub('_', feedback_id)}"


def _label(store: PredictionStore, record: FeedbackRecord) -> str | None:
    if not record.correct:
        return record.species
    prediction = store.get_prediction(record.request_id)
    return prediction.top_species if prediction else record.species


def import_feedback(
    storage: Storage,
    catalog: Catalog,
    store: PredictionStore,
    *,
    approve_all: bool = False,
    approved_ids: set[str] | None = None,
    quiet: bool = False,
) -> FeedbackImportSummary:
    """Turn shared, labelled feedback photos into collected photos (resumable, idempotent).

    Args:
        storage: where the shared photos are (`feedback/photos/`) and where records go.
        catalog: species catalog; labels outside it are skipped.
        store: the prediction and feedback database the API writes.
        approve_all: a person reviewed every photo imported now.
        approved_ids: feedback ids a person approved; records imported before are updated.
        quiet: no progress bar.

    Returns:
        Counts of what was imported, approved and skipped (with reasons).
    """
    approved_ids = approved_ids or set()
    existing = {r.record_id: r for r in load_records(storage, "feedback")}
    summary = FeedbackImportSummary()
    feedback = store.feedback()
    with progress_bar("import feedback", len(feedback), quiet=quiet) as advance:
        for record in feedback:
            advance()
            approved = approve_all or record.id in approved_ids
            if not record.share_photo or not record.photo_key:
                summary.skipped["not_shared"] += 1
                continue
            species = _label(store, record)
            if species is None:
                summary.skipped["no_label"] += 1
                continue
            if species not in catalog:
                summary.skipped["unknown_species"] += 1
                continue
            record_id = feedback_record_id(record.id)
            previous = existing.get(record_id)
            if previous is not None:
                if approved and previous.needs_review:
                    write_record(storage, previous.model_copy(update={"needs_review": False}))
                    summary.approved += 1
                else:
                    summary.already_imported += 1
                continue
            try:
                stored = normalise_photo(storage.read_bytes(record.photo_key), force_reencode=True)
            except ObjectNotFoundError:
                summary.skipped["missing_photo"] += 1
                continue
            except InvalidImageError as exc:
                logger.warning("feedback %s: %s", record.id, exc)
                summary.skipped["invalid_photo"] += 1
                continue
            write_record(
                storage,
                CollectedPhoto(
                    record_id=record_id,
                    content_hash=stored.content_hash,
                    image_key=store_photo(storage, stored),
                    species=species,
                    source="feedback",
                    license=FEEDBACK_LICENSE,
                    attribution=f"shared by an app user (feedback {record.id})",
                    observed_on=record.created_at.date().isoformat(),
                    original_path=record.photo_key,
                    needs_review=not approved,
                    collected_at=now_utc(),
                ),
            )
            summary.imported += 1
            summary.approved += int(approved)
    logger.info(
        "feedback: %d imported, %d approved, %d already imported, skipped %s",
        summary.imported,
        summary.approved,
        summary.already_imported,
        dict(summary.skipped) or "none",
    )
    return summary
