"""The baseline for api_load.py: /predict written the way the AC215 course's mushroom app served it.

Kept deliberately close to that app, not to our house style: a FastAPI `async def` route that writes
the upload to a temporary file, reads it back with `tf.io.read_file`, decodes it at full size with
`tf.io.decode_jpeg`, resizes with `tf.image.resize`, divides by 255 and calls Keras `model.predict`
on the event loop, once per request. It serves the same model as the API: the bundle's SavedModel,
wrapped in a Keras model that takes the course's [0, 1] floats (the SavedModel takes uint8 pixels
with its preprocessing inside, so the wrapper scales back by 255; that costs nothing measurable).

    cd /work/main && uv run python benchmarks/baseline_server.py --port 8100
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any

import numpy as np
import typer
import uvicorn
from _common import DEMO_BUNDLE_DIR
from fastapi import FastAPI, File

from mushroom_common.bundle import BundleMetadata, read_metadata

logger = logging.getLogger("benchmarks.baseline")
cli = typer.Typer(add_completion=False, help=__doc__)


def saved_model_path(bundle_dir: Path, metadata: BundleMetadata) -> Path:
    """The bundle's SavedModel folder; ValueError when the bundle has none."""
    for variant in metadata.variants:
        if variant.format == "saved_model" and (bundle_dir / variant.path).is_dir():
            return bundle_dir / variant.path
    raise ValueError(f"the bundle at {bundle_dir} has no SavedModel: the baseline needs one")


def course_model(saved_model: Path, height: int, width: int) -> Any:
    """A Keras model taking [0, 1] float images (the course's input) around the SavedModel."""
    import keras
    import tensorflow as tf

    images = keras.Input((height, width, 3), dtype="float32", name="image")
    pixels = keras.layers.Lambda(
        lambda x: tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0), tf.uint8),
        name="to_uint8",
    )(images)
    outputs = keras.layers.TFSMLayer(str(saved_model), call_endpoint="serving_default")(pixels)
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs
    return keras.Model(images, logits)


def rebuilt_course_model(config_path: Path, metadata: BundleMetadata) -> Any:
    """The bundle's network rebuilt from its training config, ImageNet backbone, untrained head.

    For bundles without a SavedModel anywhere (a fresh clone's demo bundle): the same layers and
    the same compute per photo, so throughput compares fairly, but its answers are not the
    trained model's.
    """
    import keras

    from mushroom_training.config import get_settings, load_config
    from mushroom_training.model import LOGITS, assemble, build_network

    config = load_config(config_path)
    network = build_network(config, len(metadata.labels), get_settings().weights_cache_dir)
    served = assemble(network, "uint8", flip_tta=config.export.flip_tta)
    size = metadata.input.height, metadata.input.width
    images = keras.Input((*size, 3), dtype="float32", name="image")
    pixels = keras.layers.Lambda(
        lambda x: keras.ops.cast(keras.ops.clip(keras.ops.round(x * 255.0), 0, 255), "uint8"),
        name="to_uint8",
    )(images)
    return keras.Model(images, served(pixels)[LOGITS])


def create_app(
    bundle_dir: Path, saved_model: Path | None = None, rebuild_config: Path | None = None
) -> FastAPI:
    """Load the model (at start-up, as the course app did) and define the routes.

    The model is the bundle's SavedModel (`saved_model`, else the one inside the bundle), or,
    when `rebuild_config` is given, the network rebuilt from that training config.
    """
    import tensorflow as tf

    metadata = read_metadata(bundle_dir)
    height, width = metadata.input.height, metadata.input.width
    if rebuild_config is not None:
        model = rebuilt_course_model(rebuild_config, metadata)
    else:
        model = course_model(saved_model or saved_model_path(bundle_dir, metadata), height, width)
    app = FastAPI(title="Course-style baseline")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        """Ready once the module-level model is loaded (always, by then)."""
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(file: Annotated[bytes, File()]) -> dict[str, Any]:
        """Predict the species of an uploaded JPEG, course style."""
        with TemporaryDirectory() as image_path:
            path = os.path.join(image_path, "test.png")
            with open(path, "wb") as output:
                output.write(file)
            image = tf.io.read_file(path)
            image = tf.io.decode_jpeg(image, channels=3)
            image = tf.image.resize(image, [height, width])
            image = image / 255
            test_data = tf.expand_dims(image, 0)
            logits = model.predict(test_data, verbose=0)
        probabilities = np.asarray(tf.nn.softmax(logits / metadata.temperature))[0]
        best = int(np.argmax(probabilities))
        return {
            "prediction_label": metadata.labels[best],
            "prediction": [float(p) for p in probabilities],
            "accuracy": round(float(probabilities[best]) * 100, 2),
        }

    return app


@cli.command()
def serve(
    bundle_dir: Annotated[Path, typer.Option(help="bundle whose SavedModel is served")] = (
        DEMO_BUNDLE_DIR
    ),
    saved_model: Annotated[
        Path | None,
        typer.Option(help="the bundle's SavedModel folder when it is not inside the bundle"),
    ] = None,
    rebuild_config: Annotated[
        Path | None,
        typer.Option(
            help="instead of a SavedModel, rebuild the network from this training config "
            "(ImageNet backbone, untrained head: same compute, meaningless answers)"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 8100,
) -> None:
    """Serve the baseline with one uvicorn worker."""
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        create_app(bundle_dir, saved_model, rebuild_config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    cli()
