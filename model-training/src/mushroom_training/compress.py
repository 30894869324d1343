"""SavedModel export and TFLite conversion: float32, float16 and full-integer int8 (uint8 input).

One SavedModel per model holds every signature the conversions need, so the (slow) tracing and
writing happens once:
- `serving_default` / `serve`: uint8 [None, H, W, 3] -> {"logits", "mushroom_score"?} (what the
  bundle's SavedModel serves);
- `tflite_uint8`: uint8 [1, H, W, 3] -> output_0 (logits), output_1 (score), for float TFLite;
- `tflite_float`: float32 [1, H, W, 3] in 0..255, for int8 calibration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mushroom_training.model import LOGITS, MUSHROOM_SCORE

logger = logging.getLogger(__name__)

SERVE = "serve"
TFLITE_UINT8 = "tflite_uint8"
TFLITE_FLOAT = "tflite_float"


def write_saved_model(
    uint8_model: keras.Model, float_model: keras.Model, size: int, target: Path
) -> None:
    """Write the SavedModel with the serving and conversion signatures.

    Args:
        uint8_model: the model with a uint8 pixel input (batch None).
        float_model: the same weights with a float32 pixel input.
        size: input height and width.
        target: the SavedModel folder.
    """

    def ordered(outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # Signature outputs are sorted by name: output_0 (logits), output_1 (score).
        result = {"output_0": outputs[LOGITS]}
        if MUSHROOM_SCORE in outputs:
            result["output_1"] = outputs[MUSHROOM_SCORE]
        return result

    archive = keras.export.ExportArchive()
    archive.track(uint8_model)
    archive.track(float_model)
    archive.add_endpoint(
        SERVE,
        lambda pixels: uint8_model(pixels, training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="pixels")],
    )
    archive.add_endpoint(
        TFLITE_UINT8,
        lambda pixels: ordered(uint8_model(pixels, training=False)),
        input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8, name="pixels")],
    )
    archive.add_endpoint(
        TFLITE_FLOAT,
        lambda pixels: ordered(float_model(pixels, training=False)),
        input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="pixels")],
    )
    archive.write_out(str(target), verbose=False)


def convert(
    saved_model: Path, variant: str, size: int, representative: np.ndarray | None = None
) -> bytes:
    """Convert a SavedModel from `write_saved_model` to TFLite.

    Args:
        saved_model: the SavedModel folder.
        variant: "float32", "float16" or "int8" (full integer, uint8 input, float outputs).
        size: input height and width.
        representative: uint8 (N, size, size, 3) calibration photos for int8.

    Returns:
        The .tflite flatbuffer, outputs in contract order.
    """
    if variant == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 conversion needs representative photos")
        # Calibrate the float-input signature on pixel values 0..255, then make the input
        # uint8: its quantization becomes scale 1, zero point 0, i.e. raw pixels.
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), [TFLITE_FLOAT])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32

        def calibration() -> Iterator[dict[str, np.ndarray]]:
            # Black and white frames pin the input range to exactly [0, 255].
            yield {"pixels": np.zeros((1, size, size, 3), np.float32)}
            yield {"pixels": np.full((1, size, size, 3), 255.0, np.float32)}
            for image in representative:
                yield {"pixels": image[np.newaxis].astype(np.float32)}

        converter.representative_dataset = calibration
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), [TFLITE_UINT8])
        if variant == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif variant != "float32":
            raise ValueError(f"unknown TFLite variant {variant!r}")
    flatbuffer = order_outputs(converter.convert())
    logger.info("converted %s: %.1f MB", variant, len(flatbuffer) / 1e6)
    return flatbuffer


def order_outputs(flatbuffer: bytes) -> bytes:
    """Put the subgraph's outputs in signature-name order (output_0 = logits, output_1 = score).

    The converter orders a signature's outputs as it likes; the bundle contract fixes output 0.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    signature = model.signatureDefs[0]
    by_name = {
        item.name.decode() if isinstance(item.name, bytes) else item.name: item.tensorIndex
        for item in signature.outputs
    }
    wanted = [by_name[name] for name in sorted(by_name)]
    subgraph = model.subgraphs[signature.subgraphIndex]
    if list(subgraph.outputs) == wanted:
        return flatbuffer
    subgraph.outputs = np.array(wanted, dtype=np.int32)
    reordered: bytes = flatbuffer_utils.convert_object_to_bytearray(model)
    return reordered
