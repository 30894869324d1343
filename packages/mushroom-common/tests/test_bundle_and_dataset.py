"""Bundle metadata and dataset manifest contracts (the store has test_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mushroom_common.bundle import (
    BundleIntegrityError,
    BundleMetadata,
    InputSpec,
    ModelVariant,
    hash_bundle_files,
    read_metadata,
    verify_bundle,
    write_metadata,
)
from mushroom_common.dataset import (
    COMPLETE_MARKER,
    ManifestRow,
    list_dataset_versions,
    read_manifest,
)
from mushroom_common.storage import ObjectNotFoundError, open_storage


def _metadata(files_dir: Path) -> BundleMetadata:
    return BundleMetadata(
        name="mushroom",
        version="20261126-abc",
        labels=["amanita_muscaria", "boletus_edulis"],
        input=InputSpec(height=224, width=224),
        temperature=1.3,
        serving_variant="int8",
        variants=[
            ModelVariant(name="int8", path="model_int8.tflite", format="tflite", size_bytes=3)
        ],
        backbone="efficientnet_lite0",
        dataset_version="ds-1",
        git_revision="deadbeef",
        files=hash_bundle_files(files_dir),
    )


def test_metadata_round_trip_and_integrity(tmp_path: Path) -> None:
    (tmp_path / "model_int8.tflite").write_bytes(b"abc")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("# report")
    metadata = _metadata(tmp_path)
    write_metadata(tmp_path, metadata)
    loaded = read_metadata(tmp_path)
    assert loaded == metadata
    assert [f.path for f in loaded.files] == ["model_int8.tflite", "report/report.md"]
    assert loaded.variant().path == "model_int8.tflite"
    verify_bundle(tmp_path, loaded)
    (tmp_path / "model_int8.tflite").write_bytes(b"tampered")
    with pytest.raises(BundleIntegrityError, match="does not match its sha256"):
        verify_bundle(tmp_path, loaded, ["model_int8.tflite"])
    with pytest.raises(KeyError, match="no variant 'float32'"):
        loaded.variant("float32")


def test_metadata_rejects_unknown_fields_and_bad_values(tmp_path: Path) -> None:
    document = _metadata(tmp_path).model_dump(mode="json")
    with pytest.raises(ValidationError):
        BundleMetadata.model_validate({**document, "surprise": 1})
    with pytest.raises(ValidationError):
        BundleMetadata.model_validate({**document, "temperature": 0})
    with pytest.raises(ValidationError):
        BundleMetadata.model_validate({**document, "labels": []})


def _row(content_hash: str, split: str) -> ManifestRow:
    return ManifestRow.model_validate(
        {
            "content_hash": content_hash,
            "image_key": f"photos/{content_hash[:2]}/{content_hash}.jpg",
            "species": "boletus_edulis",
            "split": split,
            "group_id": content_hash,
            "source": "folder",
            "license": "unlicensed",
            "width": 300,
            "height": 200,
        }
    )


def test_only_complete_dataset_versions_exist(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    rows = [_row("aa11", "train"), _row("bb22", "test")]
    storage.write_text(
        "datasets/v1/manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows)
    )
    storage.write_text("datasets/v2/manifest.jsonl", "")
    assert list_dataset_versions(storage) == []
    with pytest.raises(ObjectNotFoundError, match="incomplete"):
        read_manifest(storage, "v1")
    storage.write_text(f"datasets/v1/{COMPLETE_MARKER}", "")
    assert list_dataset_versions(storage) == ["v1"]
    assert read_manifest(storage, "v1") == rows
