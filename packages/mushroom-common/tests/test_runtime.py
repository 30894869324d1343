"""The bundle runtime on the demo bundle: outputs, calibration, per-variant temperature."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mushroom_common.bundle import BundleMetadata, InferenceView, read_metadata, write_metadata
from mushroom_common.runtime import (
    BundleRuntime,
    RuntimeLoadError,
    average_rows,
    calibrated_probabilities,
    variant_temperature,
    view_pixels,
)

DEMO = Path(__file__).parents[3] / "models" / "demo"

needs_demo = pytest.mark.skipif(
    not (DEMO / "metadata.json").is_file(), reason="no demo bundle at models/demo"
)


def test_calibrated_probabilities_is_a_tempered_softmax() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [1000.0, 999.0, 0.0]])
    probabilities = calibrated_probabilities(logits, 2.0)
    assert probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    expected = np.exp(logits[0] / 2) / np.exp(logits[0] / 2).sum()
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-12)
    assert np.all(np.isfinite(probabilities[1]))  # large logits stay finite
    assert np.array_equal(calibrated_probabilities(logits[0], 2.0), probabilities[0])
    hotter = calibrated_probabilities(logits[0], 10.0)
    assert hotter.max() < probabilities[0].max()
    with pytest.raises(ValueError, match="positive"):
        calibrated_probabilities(logits, 0.0)


@pytest.fixture(scope="module")
def demo() -> BundleMetadata:
    if not (DEMO / "metadata.json").is_file():
        pytest.skip("no demo bundle at models/demo")
    return read_metadata(DEMO)


def _pixels(count: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@needs_demo
def test_the_serving_variant_gives_logits_probabilities_and_a_score(demo: BundleMetadata) -> None:
    runtime = BundleRuntime.for_variant(DEMO, demo)
    assert runtime.input_size == (demo.input.height, demo.input.width)
    assert runtime.has_detector == (demo.mushroom_detector is not None)
    answer = runtime.run(_pixels(1)[0])
    assert answer.logits.shape == answer.probabilities.shape == (len(demo.labels),)
    assert answer.logits.dtype == answer.probabilities.dtype == np.float64
    assert np.array_equal(
        answer.probabilities, calibrated_probabilities(answer.logits, runtime.temperature)
    )
    if demo.mushroom_detector is not None:
        assert answer.mushroom_score is not None
        assert 0.0 <= answer.mushroom_score <= 1.0


@needs_demo
def test_batches_match_single_photos_bit_for_bit(demo: BundleMetadata) -> None:
    pixels = _pixels(5)
    single = BundleRuntime.for_variant(DEMO, demo)
    batched = BundleRuntime.for_variant(DEMO, demo, batch_size=2)
    one_by_one = [single.run(p) for p in pixels]
    for runtime in (single, batched):
        answers = runtime.run_batch(pixels)
        assert len(answers) == 5
        for i, answer in enumerate(one_by_one):
            np.testing.assert_allclose(answers.logits[i], answer.logits, rtol=1e-6, atol=1e-6)
    exact = single.run_batch(list(pixels))
    assert all(
        np.array_equal(exact.probabilities[i], a.probabilities) for i, a in enumerate(one_by_one)
    )


@needs_demo
def test_each_variant_uses_its_own_temperature(demo: BundleMetadata, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    serving = demo.variant()
    # Old bundles (no per-variant temperature) use the bundle's.
    assert variant_temperature(demo, serving) == demo.temperature
    student = next((v for v in demo.variants if v.name.startswith("student")), None)
    variants = [
        v.model_copy(update={"temperature": 2.5 if v is student else None}) for v in demo.variants
    ]
    write_metadata(bundle, demo.model_copy(update={"variants": variants}))
    pixels = _pixels(1)[0]
    served = BundleRuntime.for_variant(bundle)
    assert served.temperature == demo.temperature
    if student is not None:
        runtime = BundleRuntime.for_variant(bundle, variant=student.name)
        assert runtime.temperature == 2.5
        answer = runtime.run(pixels)
        assert np.array_equal(answer.probabilities, calibrated_probabilities(answer.logits, 2.5))


@needs_demo
def test_bad_variants_and_inputs_are_refused(demo: BundleMetadata, tmp_path: Path) -> None:
    with pytest.raises(RuntimeLoadError, match="no variant"):
        BundleRuntime.for_variant(DEMO, demo, "float64")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(RuntimeLoadError, match="cannot load"):
        BundleRuntime(broken, labels=demo.labels, input_size=(224, 224), temperature=1.0)
    with pytest.raises(RuntimeLoadError, match="takes"):
        BundleRuntime(
            DEMO / demo.variant().path, labels=demo.labels, input_size=(32, 32), temperature=1.0
        )
    with pytest.raises(RuntimeLoadError, match="logits"):
        BundleRuntime(
            DEMO / demo.variant().path, labels=["a", "b"], input_size=(224, 224), temperature=1.0
        )
    runtime = BundleRuntime.for_variant(DEMO, demo)
    with pytest.raises(ValueError, match="uint8"):
        runtime.run(np.zeros((224, 224, 3), np.float32))  # type: ignore[arg-type]  # wrong dtype on purpose
    with pytest.raises(ValueError, match="224"):
        runtime.run(np.zeros((100, 100, 3), np.uint8))


@needs_demo
def test_test_time_views_average_each_view_calibrated(demo: BundleMetadata) -> None:
    runtime = BundleRuntime.for_variant(DEMO, demo)
    photo = _pixels(1)[0]
    single = runtime.run(photo)
    original = runtime.run_views(photo)
    assert np.array_equal(original.probabilities, single.probabilities)
    assert original.mushroom_score == single.mushroom_score
    both = runtime.run_views(photo, (InferenceView.ORIGINAL, InferenceView.MIRROR))
    mirrored = runtime.run(view_pixels(photo, InferenceView.MIRROR))
    assert np.array_equal(mirrored.probabilities, runtime.run(photo[:, ::-1]).probabilities)
    assert both.view_probabilities.shape == (2, len(demo.labels))
    assert np.array_equal(both.view_probabilities[0], single.probabilities)
    assert np.array_equal(both.view_probabilities[1], mirrored.probabilities)
    assert np.array_equal(both.probabilities, (single.probabilities + mirrored.probabilities) / 2)
    assert np.array_equal(both.logits, (single.logits + mirrored.logits) / 2)
    np.testing.assert_allclose(both.probabilities.sum(), 1.0)
    with pytest.raises(ValueError, match="at least one view"):
        runtime.run_views(photo, ())


def test_average_rows_adds_row_after_row() -> None:
    rows = np.array([[0.1, 0.7], [0.2, 0.2], [0.3, 0.05]])
    expected = ((rows[0] + rows[1]) + rows[2]) / 3
    assert np.array_equal(average_rows(rows), expected)
