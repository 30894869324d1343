"""Evaluation measures what is served: the API's /predict and training's evaluation give the same
probabilities, bit for bit, for the same photos on the committed demo bundle (models/demo/).

The API runs as a real uvicorn server with models/demo as its fallback bundle and an empty
registry. Photos are sent as PNG, whose decode is the same in the API and in training (the API
decodes large JPEGs in draft mode, which is a decoding choice, not a model difference).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_common.bundle import BundleMetadata, read_metadata
from mushroom_training.evaluate import run_bundle_variant
from mushroom_training.negatives import generated_images
from mushroom_training.preprocess import photo_to_input

DEMO = Path(__file__).parents[3] / "models" / "demo"
SHARED = Path(__file__).parents[4] / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (DEMO / "metadata.json").is_file(), reason="no demo bundle at models/demo"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """Generated images (always) and a few development photos (when ../shared is there)."""
    chosen = [_png(image) for _, image in generated_images(4)]
    for path in sorted(SHARED.glob("nordic-field/*/*.jpg"))[::40][:6]:
        with Image.open(path) as image:
            chosen.append(_png(image))
    return chosen


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server serving models/demo (the registry is empty)."""
    root = tmp_path_factory.mktemp("served")
    settings = Settings(
        env="development",
        storage_uri=str(root / "storage"),
        model_name="mushroom-classifier",
        fallback_bundle_dir=DEMO,
        model_cache_dir=root / "cache",
        frontend_dir=None,
        admin_token="parity-admin-token",
        rate_limit_per_minute=0,
        reload_poll_seconds=0,
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=_free_port(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_api_and_evaluation_give_identical_probabilities(
    demo_server: str, photos: list[bytes]
) -> None:
    metadata: BundleMetadata = read_metadata(DEMO)
    labels = metadata.labels
    with httpx.Client(base_url=demo_server, timeout=30) as client:
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == (metadata.version, "demo_fallback")
        served = []
        for data in photos:
            response = client.post(
                "/predict",
                params={"top_k": min(10, len(labels))},
                files={"file": ("photo.png", data, "image/png")},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            served.append({p["species"]: p["probability"] for p in body["predictions"]})

    size = metadata.input
    images = np.stack([photo_to_input(data, size.height, size.width) for data in photos])
    evaluated = run_bundle_variant(DEMO, metadata, metadata.serving_variant, images)
    for answer, probabilities in zip(served, evaluated.probabilities, strict=True):
        assert answer == {label: float(probabilities[labels.index(label)]) for label in answer}
    # The API returns at most 10 species: that many of each distribution were compared.
    assert all(len(answer) == min(10, len(labels)) for answer in served)
