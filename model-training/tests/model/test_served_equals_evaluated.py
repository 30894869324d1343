"""Evaluation measures what is served: the API's /predict and training's evaluation give the same
probabilities, bit for bit, for the same photos on the committed demo bundle (models/demo/).

The API runs as a real uvicorn server with models/demo as its fallback bundle and an empty
registry. Both decode through the one photo path (mushroom_common.imaging: draft, reduce,
upright, one RGB policy), so every kind of photo is sent as it is: RGB, RGBA, palette with and
without transparency, 16-bit grey, greyscale with and without alpha, CMYK, progressive and
EXIF-rotated JPEGs, WebP with alpha, and JPEGs large enough to be decoded in draft mode.
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
from mushroom_common.imaging_samples import sample_photos
from mushroom_training.evaluate import run_bundle_variant
from mushroom_training.negatives import generated_images
from mushroom_training.preprocess import photo_to_input

SHARED = Path(__file__).parents[4] / "shared" / "data"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, bytes]]:
    """Every kind of photo, generated images, and development photos as they are (JPEGs of a
    few megapixels, decoded in draft mode) when ../shared is there."""
    chosen = list(sample_photos(600, 450, seed=1).items())
    chosen += [(f"generated {name}", _png(image)) for name, image in generated_images(4)]
    chosen += [
        (path.name, path.read_bytes())
        for path in sorted(SHARED.glob("nordic-field/*/*.jpg"))[::40][:6]
    ]
    return chosen


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Iterator[str]:
    """A real uvicorn server serving the bundle under test as its fallback (the registry is
    empty)."""
    root = tmp_path_factory.mktemp("served")
    settings = Settings(
        env="development",
        storage_uri=str(root / "storage"),
        model_name="mushroom-classifier",
        fallback_bundle_dir=bundle_dir,
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
    demo_server: str, photos: list[tuple[str, bytes]], bundle_dir: Path
) -> None:
    metadata: BundleMetadata = read_metadata(bundle_dir)
    labels = metadata.labels
    with httpx.Client(base_url=demo_server, timeout=30) as client:
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == (metadata.version, "demo_fallback")
        served = []
        for kind, data in photos:
            response = client.post(
                "/predict",
                params={"top_k": min(10, len(labels))},
                files={"file": ("photo", data, "application/octet-stream")},
            )
            assert response.status_code == 200, f"{kind}: {response.text}"
            body = response.json()
            served.append({p["species"]: p["probability"] for p in body["predictions"]})

    size = metadata.input
    images = np.stack([photo_to_input(data, size.height, size.width) for _, data in photos])
    evaluated = run_bundle_variant(bundle_dir, metadata, metadata.serving_variant, images)
    for (kind, _), answer, probabilities in zip(
        photos, served, evaluated.probabilities, strict=True
    ):
        expected = {label: float(probabilities[labels.index(label)]) for label in answer}
        assert answer == expected, kind
    # The API returns at most 10 species: that many of each distribution were compared.
    assert all(len(answer) == min(10, len(labels)) for answer in served)
