"""Behaviour checks on a model bundle as the API serves it: the committed demo bundle
(models/demo/) by default, or the one named by `--bundle` / MUSHROOM_TEST_BUNDLE.

The promotion step runs the checks not marked `demo_targets` on every candidate before it becomes
the champion; the `demo_targets` ones hold the shipped demo model to its own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mushroom_common.bundle import BundleMetadata, read_metadata, verify_bundle
from mushroom_common.catalog import load_catalog
from mushroom_common.runtime import BundleRuntime
from mushroom_training.negatives import generated_images
from mushroom_training.preprocess import photo_to_input, resize_for_model

SHARED = Path(__file__).parents[4] / "shared" / "data"
PHOTOS_PER_SPECIES = 6


@pytest.fixture(scope="module")
def metadata(bundle_dir: Path) -> BundleMetadata:
    return read_metadata(bundle_dir)


@pytest.fixture(scope="module")
def served(bundle_dir: Path, metadata: BundleMetadata) -> BundleRuntime:
    return BundleRuntime.for_variant(bundle_dir, metadata)


@pytest.fixture(scope="module")
def real_photos(metadata: BundleMetadata) -> tuple[np.ndarray, list[str]]:
    """A few development photos per species of the model (unlicensed: never in the repository)."""
    if not SHARED.is_dir():
        pytest.skip(f"no development photos at {SHARED}")
    size = metadata.input.height
    images, species = [], []
    for label in metadata.labels:
        files = sorted(SHARED.glob(f"*/{label}/*.jpg")) + sorted(SHARED.glob(f"*/*/{label}/*.jpg"))
        for path in files[:: max(1, len(files) // PHOTOS_PER_SPECIES)][:PHOTOS_PER_SPECIES]:
            images.append(photo_to_input(path.read_bytes(), size, size))
            species.append(label)
    if not images:
        pytest.skip("the development photos hold none of the model's species")
    return np.stack(images), species


def test_files_match_their_hashes_and_labels_are_catalog_ids(
    bundle_dir: Path, metadata: BundleMetadata
) -> None:
    verify_bundle(bundle_dir, metadata)
    catalog = load_catalog()
    assert metadata.labels
    assert all(label in catalog for label in metadata.labels)
    assert len(set(metadata.labels)) == len(metadata.labels)
    assert metadata.dataset_version


def test_served_variant_follows_the_io_contract(
    metadata: BundleMetadata, served: BundleRuntime
) -> None:
    size = metadata.input.height
    assert served.input_size == (size, metadata.input.width)
    answer = served.run(np.zeros((size, metadata.input.width, 3), np.uint8))
    assert answer.logits.shape == (len(metadata.labels),)
    assert answer.probabilities.sum() == pytest.approx(1.0)
    assert served.has_detector == (metadata.mushroom_detector is not None)
    if metadata.mushroom_detector is not None:
        assert answer.mushroom_score is not None
        assert 0.0 <= answer.mushroom_score <= 1.0


@pytest.mark.demo_targets
def test_metrics_meet_the_demo_targets(metadata: BundleMetadata) -> None:
    # The broad demo model (260 species, top 6 blocks fine-tuned): 0.56 top-1 on its test split;
    # what must never regress is safety: no deadly or poisonous test photo answered `edible`.
    assert metadata.data_status == "photos without a licence; for demonstration only"
    assert metadata.command.startswith("mushroom-train")
    assert metadata.metrics["top1"] >= 0.5
    assert metadata.metrics["verdict_dangerous_as_edible"] == 0
    assert metadata.variant().size_bytes <= 5_000_000
    floats = [v for v in metadata.variants if v.name in ("float32", "float16")]
    for variant in floats:
        assert metadata.metrics["top1"] >= variant.metrics["top1"] - 0.01


@pytest.mark.demo_targets
def test_real_photos_are_recognised_and_a_flipped_photo_keeps_its_label(
    metadata: BundleMetadata, served: BundleRuntime, real_photos: tuple[np.ndarray, list[str]]
) -> None:
    images, species = real_photos
    predicted = served.run_batch(images).logits.argmax(1)
    flipped = served.run_batch(images[:, :, ::-1].copy()).logits.argmax(1)
    labels = np.array([metadata.labels.index(s) for s in species])
    assert np.mean(predicted == labels) >= 0.7  # measured 0.77 (0.75 with the frozen backbone)
    assert np.mean(flipped == predicted) >= 0.85  # measured 0.90 (0.89 with the frozen backbone)


def test_int8_agreed_with_float_at_export(bundle_dir: Path, metadata: BundleMetadata) -> None:
    """The export ran the int8 model against the float32 one (before a pack dropped the float
    variants: the shipped bundle keeps int8 only): int8 loses at most a point of test top-1, and
    keeps the float model's top-1 answer on 90% of the val photos (the demo: 91%, the answers
    that move being the unsure ones; 0.3 points of top-1)."""
    if not any(v.name == "int8" for v in metadata.variants):
        pytest.skip("the bundle has no int8 variant")
    report = json.loads((bundle_dir / "report.json").read_text("utf-8"))
    variants = report["variants"]
    if "float32" not in variants:
        pytest.skip("the export made no float32 variant to compare with")
    assert report["int8_float_agreement_val"] >= 0.9
    int8, float32 = variants["int8"]["metrics"], variants["float32"]["metrics"]
    # A point, or one photo of a small test split.
    assert int8["top1"] >= float32["top1"] - max(0.01, 1 / int8["n"])


def test_detector_accepts_mushrooms_and_rejects_noise(
    metadata: BundleMetadata, served: BundleRuntime, real_photos: tuple[np.ndarray, list[str]]
) -> None:
    detector = metadata.mushroom_detector
    if detector is None:
        pytest.skip("the bundle has no mushroom detector")
    images, _ = real_photos
    scores = served.run_batch(images).mushroom_scores
    assert scores is not None
    assert np.mean(scores >= detector.threshold) >= 0.85
    size = metadata.input.height
    noise = [
        resize_for_model(image, size, size)
        for name, image in generated_images(10)
        if "noise" in name or "flat" in name
    ]
    noise_scores = served.run_batch(np.stack(noise)).mushroom_scores
    assert noise_scores is not None
    assert np.all(noise_scores < detector.threshold)
