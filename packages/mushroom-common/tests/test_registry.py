"""The registry: identifiers, champion pointer (absent vs unreadable), bundles, history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mushroom_common.bundle import (
    BundleMetadata,
    ChampionPointer,
    InputSpec,
    ModelVariant,
    PromotionEvent,
    check_identifier,
    hash_bundle_files,
    write_metadata,
)
from mushroom_common.registry import (
    BundleNotFoundError,
    InvalidBundleError,
    InvalidIdentifierError,
    InvalidPointerError,
    ModelRegistry,
    RegistryUnavailableError,
)
from mushroom_common.storage import LocalStorage, open_storage

NAME = "mushroom"


def _bundle(folder: Path, version: str, name: str = NAME) -> BundleMetadata:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_int8.tflite").write_bytes(b"model " + version.encode())
    (folder / "report.md").write_text(f"# {version}")
    metadata = BundleMetadata(
        name=name,
        version=version,
        labels=["amanita_muscaria", "boletus_edulis"],
        input=InputSpec(height=8, width=8),
        serving_variant="int8",
        variants=[
            ModelVariant(name="int8", path="model_int8.tflite", format="tflite", size_bytes=11)
        ],
        backbone="tiny",
        dataset_version="ds-1",
        git_revision="0" * 40,
        files=hash_bundle_files(folder),
    )
    write_metadata(folder, metadata)
    return metadata


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(LocalStorage(tmp_path / "storage"))


@pytest.mark.parametrize(
    "value", ["v1", "20261126-062528-d7b4428e", "mushroom-classifier", "a.b_c-d", "9" * 128]
)
def test_identifiers_accept_plain_names(value: str) -> None:
    assert check_identifier(value) == value


@pytest.mark.parametrize(
    "value", ["", "..", "../x", "a/b", "a..b", ".hidden", "-x", "v 1", "v1\x00", "é", "9" * 129]
)
def test_identifiers_refuse_paths_and_odd_text(value: str, registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        check_identifier(value)
    with pytest.raises(InvalidIdentifierError):
        registry.bundle_prefix(NAME, value)
    with pytest.raises(InvalidIdentifierError):
        registry.champion(value)


def test_schemas_validate_identifiers_and_bundle_paths() -> None:
    with pytest.raises(ValidationError):
        ChampionPointer(name=NAME, version="../../etc", promoted_at=datetime.now(UTC), reason="")
    with pytest.raises(ValidationError):
        ModelVariant(name="int8", path="../outside.tflite", format="tflite", size_bytes=1)


def test_an_absent_champion_is_none_and_set_champion_needs_the_bundle(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    assert registry.champion(NAME) is None
    with pytest.raises(BundleNotFoundError):
        registry.set_champion(NAME, "v1", "no such bundle")
    _bundle(tmp_path / "b1", "v1")
    registry.publish(tmp_path / "b1")
    pointer = registry.set_champion(NAME, "v1", "first")
    assert registry.champion(NAME) == pointer
    assert registry.storage.exists("models/mushroom/champion.json")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{not json", "json_invalid"),
        (
            b'{"name": "mushroom", "version": "../../x", "promoted_at": "2026-01-01T00:00:00Z",'
            b' "reason": ""}',
            "version",
        ),
        (
            b'{"name": "other", "version": "v1", "promoted_at": "2026-01-01T00:00:00Z",'
            b' "reason": ""}',
            "another model",
        ),
        (b"", "json_invalid"),
    ],
)
def test_a_corrupt_pointer_is_an_error_not_no_champion(
    registry: ModelRegistry, content: bytes, where: str
) -> None:
    registry.storage.write_bytes("models/mushroom/champion.json", content)
    with pytest.raises(InvalidPointerError) as raised:
        registry.champion(NAME)
    assert where in str(raised.value) or "not valid" in str(raised.value)


def test_bundles_round_trip_with_hash_checks(registry: ModelRegistry, tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        _bundle(tmp_path / version, version)
        uri = registry.publish(tmp_path / version)
        assert uri == registry.bundle_uri(NAME, version)
    _bundle(tmp_path / "other", "v1", name="other-model")
    registry.publish(tmp_path / "other")
    assert registry.versions(NAME) == ["v1", "v2"]
    assert registry.names() == ["mushroom", "other-model"]
    assert registry.metadata(NAME, "v2").version == "v2"
    assert registry.has_version(NAME, "v1")
    assert not registry.has_version(NAME, "v3")
    with pytest.raises(BundleNotFoundError):
        registry.metadata(NAME, "v3")

    whole = registry.download(NAME, "v1", tmp_path / "copy")
    assert (tmp_path / "copy" / "report.md").read_text() == "# v1"
    assert whole.files
    only_model = registry.download(NAME, "v2", tmp_path / "model-only", ["model_int8.tflite"])
    assert only_model.version == "v2"
    assert not (tmp_path / "model-only" / "report.md").exists()

    registry.storage.write_bytes("models/mushroom/v2/model_int8.tflite", b"tampered")
    with pytest.raises(InvalidBundleError, match="sha256"):
        registry.download(NAME, "v2", tmp_path / "tampered")
    registry.storage.write_bytes("models/mushroom/v2/metadata.json", b"{}")
    with pytest.raises(InvalidBundleError):
        registry.metadata(NAME, "v2")


def test_promotion_history_appends(registry: ModelRegistry) -> None:
    assert registry.history(NAME) == []
    for version, accepted in (("v1", True), ("v2", False)):
        registry.record_promotion(
            PromotionEvent(
                name=NAME,
                version=version,
                previous_version=None,
                promoted_at=datetime.now(UTC),
                forced=False,
                accepted=accepted,
                reason="test",
            )
        )
    assert [(e.version, e.accepted) for e in registry.history(NAME)] == [
        ("v1", True),
        ("v2", False),
    ]


def test_a_storage_outage_is_unavailable_not_empty(gcs_emulator: tuple[Any, str]) -> None:
    emulator, uri = gcs_emulator
    registry = ModelRegistry(open_storage(uri))
    assert registry.champion(NAME) is None
    emulator.stop()
    with pytest.raises(RegistryUnavailableError):
        registry.champion(NAME)
    with pytest.raises(RegistryUnavailableError):
        registry.versions(NAME)
