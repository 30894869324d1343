"""Checks on a real dataset version (the newest in MUSHROOM_STORAGE_URI, or TRAIN_DATA_VERSION)."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import ManifestRow, list_dataset_versions, read_manifest
from mushroom_common.storage import Storage, StorageError, open_storage
from mushroom_training.preprocess import decode_photo

SAMPLE = 40


@pytest.fixture(scope="module")
def version() -> tuple[Storage, list[ManifestRow]]:
    uri = os.environ.get("TRAIN_STORAGE_URI") or os.environ.get("MUSHROOM_STORAGE_URI")
    if not uri:
        pytest.skip("set MUSHROOM_STORAGE_URI to check a dataset version")
    try:
        storage = open_storage(uri)
        versions = list_dataset_versions(storage)
    except StorageError as exc:
        pytest.skip(f"storage unavailable: {exc}")
    wanted = os.environ.get("TRAIN_DATA_VERSION") or (versions[-1] if versions else None)
    if wanted is None:
        pytest.skip(f"no complete dataset version in {uri}")
    return storage, read_manifest(storage, wanted)


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
