"""Server time of POST /predict with five 1024-px photos against one, side by side (issue 24).

The app runs in this process with the demo bundle (`TestClient`, the lifespan run, no prediction
log, no rate limit); the photos are field photos scaled to 1024 px on the long side and encoded as
the frontend uploads them (JPEG quality 85). One-photo and five-photo requests alternate, so load
on the machine falls on both alike.

    cd /work/main && uv run python benchmarks/observation_timing.py --help
"""

from __future__ import annotations

import io
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from _common import (
    DEMO_BUNDLE_DIR,
    FRONTEND_JPEG_QUALITY,
    FRONTEND_MAX_SIDE,
    SHARED_DATA_DIR,
    describe_machine,
    machine_info,
    write_report,
)
from fastapi.testclient import TestClient
from PIL import Image

from mushroom_api.config import Settings
from mushroom_api.main import create_app

logger = logging.getLogger("observation_timing")


def upload_photo(path: Path) -> bytes:
    """A field photo as the frontend sends it: 1024 px on the long side, JPEG quality 85."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        scale = FRONTEND_MAX_SIDE / max(rgb.size)
        resized = rgb.resize(
            (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=FRONTEND_JPEG_QUALITY)
    return buffer.getvalue()


def main(
    bundle: Annotated[Path, typer.Option(help="bundle folder")] = DEMO_BUNDLE_DIR,
    data: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    rounds: Annotated[int, typer.Option(help="timed requests of each kind")] = 20,
    warmup: Annotated[int, typer.Option(help="untimed requests of each kind first")] = 3,
) -> None:
    """Time one-photo and five-photo /predict requests, alternating; write a JSON report."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sources = sorted((data / "nordic-field" / "amanita_virosa").glob("*.jpg"))[:5]
    photos = [upload_photo(path) for path in sources]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            env="development",
            storage_uri=str(Path(tmp) / "storage"),
            fallback_bundle_dir=bundle,
            model_cache_dir=Path(tmp) / "cache",
            frontend_dir=None,
            rate_limit_per_minute=0,
            log_predictions=False,
        )
        timings: dict[int, list[float]] = {1: [], 5: []}
        with TestClient(create_app(settings)) as client:
            for index in range(warmup + rounds):
                for count in (1, 5):
                    files = [("file", (f"p{i}.jpg", photos[i], "image/jpeg")) for i in range(count)]
                    started = time.perf_counter()
                    response = client.post("/predict", files=files)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    if index >= warmup:
                        timings[count].append(elapsed)
    one, five = statistics.median(timings[1]), statistics.median(timings[5])
    result = {
        "machine": describe_machine(machine_info()),
        "bundle": str(bundle),
        "photo_bytes": [len(p) for p in photos],
        "rounds": rounds,
        "one_photo_median_ms": one * 1000,
        "five_photos_median_ms": five * 1000,
        "one_photo_p90_ms": statistics.quantiles(timings[1], n=10)[-1] * 1000,
        "five_photos_p90_ms": statistics.quantiles(timings[5], n=10)[-1] * 1000,
        "ratio_of_medians": five / one,
    }
    logger.info("%s", result)
    logger.info("wrote %s", write_report("observation_timing", result))


if __name__ == "__main__":
    typer.run(main)
