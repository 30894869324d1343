"""Test helpers shared by the API tests: the tiny real model, bundles, photos, ports.

(Kept out of conftest.py so test modules can import it by a name no other package uses.)
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from PIL import Image

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_common.bundle import (
    BundleMetadata,
    DecisionRulesSpec,
    InputSpec,
    ModelVariant,
    MushroomDetectorSpec,
    hash_bundle_files,
    write_metadata,
)
from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import LocalStorage, Storage

# The tiny model's behaviour, by photo colour (see build_tiny_tflite):
#   red -> amanita_phalloides (deadly), green -> suillus_luteus (edible, no look-alikes),
#   blue -> boletus_edulis (choice, but its poisonous look-alike is not in these labels),
#   black -> mushroom_score 0.12 (not a mushroom; the threshold is 0.5).
TINY_LABELS = ["amanita_phalloides", "suillus_luteus", "boletus_edulis"]
TINY_SIZE = 32
RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)

ADMIN_AUTH = {"Authorization": "Bearer test-admin-token"}

BundleFactory = Callable[..., BundleMetadata]
PhotoFactory = Callable[..., bytes]

# The fields every identification answer carries (the schema's required ones).
IDENTIFICATION_REQUIRED_KEYS = frozenset(
    {
        "request_id",
        "verdict",
        "message",
        "disclaimer",
        "predictions",
        "genera",
        "possibly_unknown_species",
        "lookalikes",
        "mushroom_score",
        "model",
    }
)


def fake_metadata(
    labels: list[str],
    decision_rules: DecisionRulesSpec,
    mushroom_detector: MushroomDetectorSpec | None = None,
) -> BundleMetadata:
    """Metadata for a fake 16x16 int8 classifier that has no model file behind it."""
    detector = {} if mushroom_detector is None else {"mushroom_detector": mushroom_detector}
    return BundleMetadata(
        name="fake",
        version="f1",
        labels=labels,
        input=InputSpec(height=16, width=16),
        serving_variant="int8",
        variants=[ModelVariant(name="int8", path="m.tflite", format="tflite", size_bytes=0)],
        backbone="none",
        dataset_version="none",
        git_revision="none",
        decision_rules=decision_rules,
        **detector,
    )


def build_tiny_tflite(path: Path) -> None:
    """A tiny Keras model as TFLite: uint8 [1, 32, 32, 3] -> logits [1, 3], mushroom_score [1, 1].

    logits = 20 * mean RGB in [0, 1] (one channel per label); score = sigmoid(20 * mean - 2).
    """
    import keras
    import tensorflow as tf

    inputs = keras.Input(shape=(TINY_SIZE, TINY_SIZE, 3), batch_size=1, dtype="uint8")
    scaled = keras.layers.Rescaling(1.0 / 255.0)(keras.ops.cast(inputs, "float32"))
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    logits_layer = keras.layers.Dense(3, use_bias=False, name="logits")
    score_layer = keras.layers.Dense(1, activation="sigmoid", name="mushroom_score")
    model = keras.Model(inputs, [logits_layer(pooled), score_layer(pooled)])
    logits_layer.set_weights([np.eye(3, dtype=np.float32) * 20.0])
    score_layer.set_weights([np.full((3, 1), 20.0 / 3.0, np.float32), np.array([-2.0], np.float32)])

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())


def make_bundle(
    tflite: Path,
    bundle_dir: Path,
    *,
    name: str = "mushroom",
    version: str = "v1",
    detector: bool = True,
    temperature: float = 1.0,
) -> BundleMetadata:
    """Write a bundle folder (model file + metadata.json with hashes) around the tiny model."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tflite, bundle_dir / "model_int8.tflite")
    metadata = BundleMetadata(
        name=name,
        version=version,
        labels=TINY_LABELS,
        input=InputSpec(height=TINY_SIZE, width=TINY_SIZE),
        temperature=temperature,
        serving_variant="int8",
        variants=[
            ModelVariant(
                name="int8",
                path="model_int8.tflite",
                format="tflite",
                size_bytes=tflite.stat().st_size,
                metrics={"accuracy": 0.9},
            )
        ],
        mushroom_detector=MushroomDetectorSpec(method="tiny_brightness", threshold=0.5)
        if detector
        else None,
        backbone="tiny",
        dataset_version="ds-test",
        git_revision="0" * 40,
        data_status="synthetic test bundle",
        metrics={"accuracy": 0.9, "macro_f1": 0.88},
        files=[],
    )
    metadata = metadata.model_copy(update={"files": hash_bundle_files(bundle_dir)})
    write_metadata(bundle_dir, metadata)
    return metadata


def publish_champion(
    storage_root: Path | Storage, bundle_dir: Path, metadata: BundleMetadata
) -> None:
    """Upload a bundle to the registry and point the champion at it."""
    storage = storage_root if isinstance(storage_root, Storage) else LocalStorage(storage_root)
    registry = ModelRegistry(storage)
    registry.publish(bundle_dir)
    registry.set_champion(metadata.name, metadata.version, "test")


def photo_bytes(
    colour: tuple[int, int, int] = GREEN,
    size: tuple[int, int] = (80, 64),
    fmt: str = "JPEG",
    **save_args: Any,
) -> bytes:
    """A one-colour photo encoded in `fmt`."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def assert_same_pixels_without_metadata(stored: bytes, original: bytes) -> None:
    """`stored` is a JPEG of the same photo as `original`, carrying no metadata at all."""
    kept = Image.open(io.BytesIO(stored))
    source = Image.open(io.BytesIO(original))
    assert kept.format == "JPEG"
    assert kept.size == source.size
    assert not kept.getexif()
    assert not {"exif", "icc_profile", "xmp", "comment"} & set(kept.info)
    difference = np.abs(
        np.asarray(kept.convert("RGB"), dtype=np.int16)
        - np.asarray(source.convert("RGB"), dtype=np.int16)
    )
    assert float(difference.mean()) < 4.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Any, start_timeout_s: float = 60.0) -> Iterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1 in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def running(settings: Settings) -> Iterator[httpx.Client]:
    """A real uvicorn server on 127.0.0.1 for these settings; yields a client for it."""
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client
