"""Writing collected photos: bytes first (content addressed), then the record that points at them.

The order is what makes every collector resumable: a record exists only when its photo does, a
photo is written atomically and at most once, so a kill at any moment leaves at worst an
unreferenced photo that the next run's identical download or read re-uses.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from mushroom_collector.images import StoredPhoto
from mushroom_common.dataset import COLLECTED_PREFIX, PHOTOS_PREFIX, CollectedPhoto, Source
from mushroom_common.storage import Storage

logger = logging.getLogger(__name__)

RECORD_SUFFIX = ".json"


def photo_key(content_hash: str, ext: str = "jpg") -> str:
    """Storage key of a photo: `photos/<sha256[:2]>/<sha256>.<ext>`."""
    return f"{PHOTOS_PREFIX}/{content_hash[:2]}/{content_hash}.{ext}"


def record_key(source: Source, record_id: str) -> str:
    """Storage key of one CollectedPhoto record."""
    return f"{COLLECTED_PREFIX}/{source}/{record_id}{RECORD_SUFFIX}"


def store_photo(storage: Storage, photo: StoredPhoto) -> str:
    """Write the photo's bytes unless they are there already; return their key."""
    key = photo_key(photo.content_hash)
    storage.write_bytes_if_absent(key, photo.data, "image/jpeg")
    return key


def write_record(storage: Storage, record: CollectedPhoto) -> None:
    """Write one record (after its photo)."""
    storage.write_text(
        record_key(record.source, record.record_id),
        record.model_dump_json(indent=2) + "\n",
        "application/json",
    )


def existing_record_ids(storage: Storage, source: Source) -> set[str]:
    """Record ids already written for a source."""
    prefix = f"{COLLECTED_PREFIX}/{source}/"
    return {
        key[len(prefix) : -len(RECORD_SUFFIX)]
        for key in storage.list(prefix)
        if key.endswith(RECORD_SUFFIX) and "/" not in key[len(prefix) :]
    }


def load_records(storage: Storage, source: Source | None = None) -> list[CollectedPhoto]:
    """Every collected record (of one source, or all), sorted by source and record id.

    A record that does not parse is logged and skipped: it can only come from a hand edit,
    since records are written atomically.
    """
    prefix = f"{COLLECTED_PREFIX}/{source}/" if source else f"{COLLECTED_PREFIX}/"
    records = []
    for key in storage.list(prefix):
        if not key.endswith(RECORD_SUFFIX) or key.count("/") != 2:
            continue
        try:
            records.append(CollectedPhoto.model_validate_json(storage.read_bytes(key)))
        except ValidationError as exc:
            logger.warning("skipping unreadable record %s: %s", key, exc)
    return sorted(records, key=lambda r: (r.source, r.record_id))


def now_utc() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
