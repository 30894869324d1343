"""The dataset contract between the collector (writes) and training (reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.storage import ObjectNotFoundError, Storage

DATASETS_PREFIX = "datasets"
COLLECTED_PREFIX = "collected"
PHOTOS_PREFIX = "photos"
MANIFEST_FILE = "manifest.jsonl"
REPORT_FILE = "report.json"
CARD_FILE = "DATASET.md"
COMPLETE_MARKER = "_COMPLETE"
SPLITS = ("train", "val", "test")

Split = Literal["train", "val", "test"]
Source = Literal["inaturalist", "folder", "feedback"]


class CollectedPhoto(BaseModel):
    """One collected photo, written to `collected/<source>/<record_id>.json` after its bytes."""

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(description="unique within the source, e.g. 'inat-<photo id>'")
    content_hash: str = Field(description="sha256 of the stored bytes")
    image_key: str = Field(description="storage key of the photo bytes")
    species: str = Field(description="catalog id")
    source: Source
    source_url: str | None = None
    observation_id: str | None = None
    observation_url: str | None = None
    license: str = Field(description="licence code, e.g. cc-by; 'unlicensed' for local imports")
    attribution: str = ""
    observer: str | None = None
    observed_on: str | None = None
    original_path: str | None = None
    original_split: Split | None = None
    needs_review: bool = Field(False, description="user feedback not yet reviewed by a person")
    collected_at: datetime


class ManifestRow(BaseModel):
    """One photo of a dataset version (`datasets/<version>/manifest.jsonl`)."""

    model_config = ConfigDict(extra="forbid")

    content_hash: str
    image_key: str
    species: str
    split: Split
    group_id: str = Field(
        description="photos of one group (near-duplicates, one observation) share a split"
    )
    source: Source
    source_url: str | None = None
    observation_url: str | None = None
    license: str
    attribution: str = ""
    observer: str | None = None
    observed_on: str | None = None
    width: int
    height: int
    perceptual_hash: str | None = None


def dataset_prefix(version_id: str) -> str:
    """Storage prefix of a dataset version."""
    return f"{DATASETS_PREFIX}/{version_id}"


def is_complete(storage: Storage, version_id: str) -> bool:
    """Whether the version was fully written (its completion marker exists)."""
    return storage.exists(f"{dataset_prefix(version_id)}/{COMPLETE_MARKER}")


def read_manifest(storage: Storage, version_id: str) -> list[ManifestRow]:
    """Read a complete dataset version's manifest; raise ObjectNotFoundError otherwise."""
    if not is_complete(storage, version_id):
        raise ObjectNotFoundError(f"dataset version {version_id!r} does not exist or is incomplete")
    text = storage.read_text(f"{dataset_prefix(version_id)}/{MANIFEST_FILE}")
    return [ManifestRow.model_validate_json(line) for line in text.splitlines() if line.strip()]


def list_dataset_versions(storage: Storage) -> list[str]:
    """Ids of every complete dataset version, sorted."""
    suffix = f"/{COMPLETE_MARKER}"
    return sorted(
        key[len(DATASETS_PREFIX) + 1 : -len(suffix)]
        for key in storage.list(f"{DATASETS_PREFIX}/")
        if key.endswith(suffix) and key.count("/") == 2
    )
