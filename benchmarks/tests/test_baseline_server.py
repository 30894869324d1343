"""baseline_server.py: which folder of a bundle it serves (the server itself needs TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from baseline_server import saved_model_path

from mushroom_common.bundle import BundleMetadata, InputSpec, ModelVariant


def _metadata(variants: list[ModelVariant]) -> BundleMetadata:
    return BundleMetadata(
        name="t",
        version="v1",
        labels=["boletus_edulis"],
        input=InputSpec(height=8, width=8),
        serving_variant="int8",
        variants=variants,
        backbone="tiny",
        dataset_version="ds",
        git_revision="0" * 40,
    )


def test_saved_model_path_finds_the_saved_model_folder(tmp_path: Path) -> None:
    (tmp_path / "saved_model").mkdir()
    metadata = _metadata(
        [
            ModelVariant(name="int8", path="model_int8.tflite", format="tflite", size_bytes=1),
            ModelVariant(
                name="saved_model", path="saved_model", format="saved_model", size_bytes=1
            ),
        ]
    )
    assert saved_model_path(tmp_path, metadata) == tmp_path / "saved_model"


def test_saved_model_path_refuses_a_bundle_without_one(tmp_path: Path) -> None:
    metadata = _metadata(
        [
            ModelVariant(
                name="saved_model", path="saved_model", format="saved_model", size_bytes=1
            ),
        ]
    )
    with pytest.raises(ValueError, match="no SavedModel"):
        saved_model_path(tmp_path, metadata)
