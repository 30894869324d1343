"""The field head's surgery on the bundle under test (models/demo unless `--bundle`): its pooled
features reproduce the served logits, and a head written back into the int8 model answers like
the float head."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mushroom_common.bundle import read_metadata
from mushroom_common.runtime import BundleRuntime
from mushroom_training import field_head


def test_pooled_features_and_a_rewritten_head_match_the_served_model(
    tmp_path: Path, bundle_dir: Path
) -> None:
    metadata = read_metadata(bundle_dir)
    labels = len(metadata.labels)
    served = bundle_dir / metadata.variant().path
    pooled = tmp_path / "pooled.tflite"
    field_head.with_pooled_output(served, pooled, labels)
    size = metadata.input.height
    runner = field_head.PooledRunner(pooled, labels)
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 255, (6, size, size, 3), dtype=np.uint8)
    runtime = BundleRuntime.for_variant(bundle_dir, metadata)
    weights, bias = field_head.read_head(served, labels)
    features = []
    for photo in photos:
        logits, feature = runner.run(photo)
        np.testing.assert_allclose(logits, runtime.run(photo).logits, atol=1e-5)
        # The float head on the dequantized features gives the int8 head's logits (one step).
        assert np.abs(feature @ weights + bias - logits).max() < 0.2
        features.append(feature)
    # A different head (the served one, mirrored in label order) written into the model.
    new_w, new_b = weights[:, ::-1].copy(), bias[::-1].copy()
    expected = np.array(features) @ new_w + new_b
    rewritten = tmp_path / "rewritten.tflite"
    field_head.replace_head(served, rewritten, new_w, new_b, (-30.0, 10.0))
    assert rewritten.stat().st_size == served.stat().st_size
    answers = BundleRuntime(
        rewritten,
        labels=metadata.labels,
        input_size=(size, size),
        temperature=1.0,
        score_output=metadata.mushroom_detector.output_index
        if metadata.mushroom_detector
        else None,
    ).run_batch(photos)
    assert np.abs(answers.logits - expected).max() < 0.3
    assert np.array_equal(answers.logits.argmax(1), expected.argmax(1))
