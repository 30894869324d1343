"""inference.py: the evaluation photos, output handling, scoring and the decode comparison."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from _common import encode_jpeg, photo_from_bytes, synthetic_photo
from inference import (
    EvalSet,
    _logits_index,
    decode_cases,
    fit_input,
    load_folder_photos,
    load_test_split,
    sample_batch,
    top1,
)
from PIL import Image

from mushroom_common.bundle import BundleMetadata, InputSpec, ModelVariant
from mushroom_common.dataset import ManifestRow
from mushroom_common.storage import LocalStorage, ObjectNotFoundError

LABELS = ["amanita_muscaria", "boletus_edulis"]


def _metadata(dataset_version: str = "ds-1") -> BundleMetadata:
    return BundleMetadata(
        name="t",
        version="v1",
        labels=LABELS,
        input=InputSpec(height=32, width=32),
        serving_variant="int8",
        variants=[ModelVariant(name="int8", path="m.tflite", format="tflite", size_bytes=1)],
        backbone="tiny",
        dataset_version=dataset_version,
        git_revision="0" * 40,
    )


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    return encode_jpeg(Image.new("RGB", size, colour), 90)


def test_logits_index_finds_the_label_sized_output() -> None:
    outputs = [{"shape": np.array([1, 1])}, {"shape": np.array([1, 9])}]
    assert _logits_index(outputs, 9) == 1
    assert _logits_index(outputs, 5) == 0


def test_sample_batch_repeats_a_small_pool() -> None:
    pool = np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1)
    batch = sample_batch(pool, 7)
    assert batch[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert batch.flags["C_CONTIGUOUS"]


def test_fit_input_resizes_only_when_needed() -> None:
    pixels = np.zeros((2, 32, 32, 3), np.uint8)
    assert fit_input(pixels, (32, 32)) is pixels
    assert fit_input(pixels, (16, 24)).shape == (2, 16, 24, 3)


class _MeanColourRunner:
    """Label 0 for reddish photos, label 1 otherwise (a stand-in model with known answers)."""

    input_size = (32, 32)
    batched = True

    def __call__(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        red = pixels[..., 0].mean(axis=(1, 2)) > pixels[..., 2].mean(axis=(1, 2))
        return np.stack([red, ~red], axis=-1).astype(np.float32)


def test_top1_scores_in_batches() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 200
    images = np.stack([red] * 3 + [blue] * 2)
    eval_set = EvalSet(images, np.array([0, 0, 1, 1, 1]), "test")
    assert top1(_MeanColourRunner(), eval_set, batch=2) == pytest.approx(0.8)


def test_load_folder_photos_labels_by_folder_name(tmp_path: Path) -> None:
    for folder, colour in (
        ("mushroomvision/val/amanita_muscaria", (220, 30, 30)),
        ("nordic-field/boletus_edulis", (120, 80, 40)),
        ("nordic-field/not_a_species", (0, 0, 0)),
    ):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(3):
            (tmp_path / folder / f"{i}.jpg").write_bytes(_jpeg(colour))
    eval_set = load_folder_photos(_metadata(), tmp_path, per_species=2)
    assert eval_set.images.shape == (4, 32, 32, 3)
    assert eval_set.labels.tolist() == [0, 0, 1, 1]
    assert "NOT the test split" in eval_set.note


def test_load_test_split_reads_only_test_rows(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    rows = []
    for i, (species, split) in enumerate(
        [
            ("amanita_muscaria", "test"),
            ("boletus_edulis", "test"),
            ("boletus_edulis", "train"),
            ("suillus_luteus", "test"),
        ]
    ):
        key = f"photos/{i:02d}/{i}.jpg"
        storage.write_bytes(key, _jpeg((i * 60, 100, 100)))
        rows.append(
            ManifestRow(
                content_hash=str(i),
                image_key=key,
                species=species,
                split=split,
                group_id=str(i),
                source="folder",
                license="unlicensed",
                width=64,
                height=48,
            )
        )
    with pytest.raises(ObjectNotFoundError):
        load_test_split(_metadata(), str(tmp_path), None)
    storage.write_text(
        "datasets/ds-1/manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows)
    )
    storage.write_text("datasets/ds-1/_COMPLETE", "")
    eval_set = load_test_split(_metadata(), str(tmp_path), None)
    assert eval_set.labels.tolist() == [0, 1]
    assert "1 test photos of species outside the model skipped" in eval_set.note


def test_decode_cases_compare_draft_with_full_decoding() -> None:
    data = encode_jpeg(synthetic_photo(1600, 1200, seed=1, noise=4.0), 90)
    results = decode_cases([photo_from_bytes("p", data)], (224, 224), runs=1)
    by_mode = {r.mode.split(",")[1].strip(): r for r in results}
    assert (
        by_mode["draft mode (served)"].decoded_at == "400x300"
    )  # 1/4 scale: 1/8 would leave 150 < 224
    assert by_mode["no draft (full size)"].decoded_at == "1600x1200"
    assert all(r.latency.count == 1 for r in results)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (1600, 1200)
