"""Checks on a real dataset version: the newest in MUSHROOM_STORAGE_URI (or TRAIN_DATA_VERSION)
when that storage holds one, else a small version built from ../shared/data/nordic-field in a
temporary storage (the development photos are never copied into the repository)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from mushroom_collector.build import BuildParams, build_dataset
from mushroom_collector.folder import import_folder
from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import ManifestRow, list_dataset_versions, read_manifest
from mushroom_common.storage import LocalStorage, Storage, StorageError, open_storage
from mushroom_training.preprocess import decode_photo

SAMPLE = 40
# tests/data -> model-training -> repository root -> ../shared/data
SMALL_FOLDER = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "nordic-field"


def _configured_version() -> tuple[Storage, str] | None:
    """The version to check in MUSHROOM_STORAGE_URI, when it is set and holds one."""
    uri = os.environ.get("MUSHROOM_STORAGE_URI")
    if not uri:
        return None
    try:
        storage = open_storage(uri)
        versions = list_dataset_versions(storage)
    except StorageError as exc:
        pytest.skip(f"storage unavailable: {exc}")
    wanted = os.environ.get("TRAIN_DATA_VERSION") or (versions[-1] if versions else None)
    return (storage, wanted) if wanted else None


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> tuple[Storage, list[ManifestRow]]:
    configured = _configured_version()
    if configured is not None:
        storage, wanted = configured
        return storage, read_manifest(storage, wanted)
    if not SMALL_FOLDER.is_dir():
        pytest.skip(
            f"set MUSHROOM_STORAGE_URI to a storage with a dataset version, or put the "
            f"development photos at {SMALL_FOLDER.parent}"
        )
    storage = LocalStorage(tmp_path_factory.mktemp("dataset") / "store")
    catalog = load_catalog()
    import_folder(storage, SMALL_FOLDER, catalog, quiet=True)
    built = build_dataset(storage, catalog, BuildParams(), quiet=True)
    return storage, read_manifest(storage, built.version_id)


def test_labels_are_catalog_ids(version: tuple[Storage, list[ManifestRow]]) -> None:
    catalog = load_catalog()
    assert {row.species for row in version[1]} <= set(catalog.ids)


def test_every_split_holds_every_species(version: tuple[Storage, list[ManifestRow]]) -> None:
    by_split: dict[str, set[str]] = defaultdict(set)
    for row in version[1]:
        by_split[row.split].add(row.species)
    assert by_split["train"] == by_split["val"] == by_split["test"]


def test_no_photo_or_group_crosses_splits(version: tuple[Storage, list[ManifestRow]]) -> None:
    splits_of_hash: dict[str, set[str]] = defaultdict(set)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in version[1]:
        splits_of_hash[row.content_hash].add(row.split)
        splits_of_group[row.group_id].add(row.split)
    assert all(len(s) == 1 for s in splits_of_hash.values())
    assert all(len(s) == 1 for s in splits_of_group.values())
    assert len(splits_of_hash) == len(version[1])


def test_sampled_photos_decode_at_their_recorded_size(
    version: tuple[Storage, list[ManifestRow]],
) -> None:
    storage, rows = version
    for row in rows[:: max(1, len(rows) // SAMPLE)]:
        image = decode_photo(storage.read_bytes(row.image_key))
        assert image.size == (row.width, row.height)
