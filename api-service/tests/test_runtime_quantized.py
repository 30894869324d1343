"""The runtime dequantizes integer outputs, so a fully-int8 model serves real probabilities.

A tiny Keras model is converted with int8 outputs (and raw uint8 pixels in); the runtime must
return the same logits as the float model within one quantization step, and the API must serve
it like any other bundle.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mushroom_api_testkit import RED, TINY_LABELS, TINY_SIZE, make_bundle, photo_bytes

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_common.runtime import BundleRuntime


def _int8_output_model(path: Path) -> None:
    """logits = 20 * mean RGB in [0, 1] (as the tiny model), score = sigmoid(...); int8 outputs."""
    import keras
    import tensorflow as tf

    inputs = keras.Input(shape=(TINY_SIZE, TINY_SIZE, 3), batch_size=1)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0 / 255.0)(inputs))
    logits_layer = keras.layers.Dense(3, use_bias=False, name="logits")
    score_layer = keras.layers.Dense(1, activation="sigmoid", name="mushroom_score")
    model = keras.Model(inputs, [logits_layer(pooled), score_layer(pooled)])
    logits_layer.set_weights([np.eye(3, dtype=np.float32) * 20.0])
    score_layer.set_weights([np.full((3, 1), 20.0 / 3.0, np.float32), np.array([-2.0], np.float32)])

    rng = np.random.default_rng(0)

    def representative() -> object:
        for _ in range(64):
            yield [rng.integers(0, 256, (1, TINY_SIZE, TINY_SIZE, 3)).astype(np.float32)]
        for value in (0, 255):
            yield [np.full((1, TINY_SIZE, TINY_SIZE, 3), value, np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int8-outputs")
    _int8_output_model(folder / "model.tflite")
    make_bundle(folder / "model.tflite", folder / "bundle", name="demo", version="int8-out")
    return folder / "bundle"


def test_integer_outputs_are_dequantized(int8_bundle: Path) -> None:
    runtime = BundleRuntime.for_variant(int8_bundle)
    assert runtime.has_detector
    scales = runtime.output_quantization
    assert scales["logits"] is not None, "the model must output quantized logits"
    assert scales["mushroom_score"] is not None
    for colour, label in ((RED, 0), ((0, 255, 0), 1), ((0, 0, 255), 2)):
        pixels = np.zeros((TINY_SIZE, TINY_SIZE, 3), np.uint8)
        pixels[...] = colour
        answer = runtime.run(pixels)
        expected = np.zeros(3)
        expected[label] = 20.0  # 20 * the full channel's mean
        step = scales["logits"][0]  # type: ignore[index]  # checked not None above
        np.testing.assert_allclose(answer.logits, expected, atol=2 * step)
        assert int(np.argmax(answer.probabilities)) == label
        assert answer.mushroom_score is not None
        assert 0.5 < answer.mushroom_score <= 1.0


def test_the_api_serves_an_int8_output_bundle(int8_bundle: Path, settings: Settings) -> None:
    demo = Path(str(settings.fallback_bundle_dir))
    shutil.rmtree(demo)
    shutil.copytree(int8_bundle, demo)
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/predict",
            params={"top_k": len(TINY_LABELS)},
            files={"file": ("p.jpg", photo_bytes(RED), "image/jpeg")},
        ).json()
    assert answer["model"]["version"] == "int8-out"
    assert answer["predictions"][0]["species"] == TINY_LABELS[0]
    assert answer["verdict"] == "dangerous"
