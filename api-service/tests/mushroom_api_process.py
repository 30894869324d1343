"""A real `mushroom-api` in a subprocess (uvicorn, the repository's demo bundle), for tests that
need a process of its own: several replicas, a database that goes away, a full disk."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from mushroom_faults_kit import ApiProcess as ServerProcess
from mushroom_faults_kit import environ_without
from mushroom_faults_kit import start_api as start_server_process
from PIL import Image


def random_photo(seed: int, size: tuple[int, int] = (160, 128)) -> bytes:
    """A JPEG of noise: every seed a different photo (and a different sha256)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class ApiProcess:
    """One API server on 127.0.0.1: the fault kit's process, with the calls these tests make."""

    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.base_url

    def stop(self) -> None:
        self.server.stop()

    @property
    def log(self) -> str:
        return self.server.log()

    def predict(self, photo: bytes, timeout_s: float = 30.0) -> httpx.Response:
        return httpx.post(
            f"{self.url}/predict", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=timeout_s
        )

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.url}/readyz", timeout=10)

    def wait_until(self, ready: bool, timeout_s: float = 30.0) -> httpx.Response:
        """Poll /readyz until it says ready (200) or not (503); the last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.ready()
            if (answer.status_code == 200) == ready or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)


def start_api(tmp_path: Path, name: str, database_url: str | None, **settings: str) -> ApiProcess:
    """Start `mushroom-api` with its own storage folder and the given database; wait for it."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    env = environ_without("API_", "MUSHROOM_", "STORAGE_EMULATOR_HOST")
    env.update(
        {
            "MUSHROOM_STORAGE_URI": str(home / "storage"),
            "API_MODEL_CACHE_DIR": str(home / "cache"),
            "API_FRONTEND_DIR": "",
            "API_RATE_LIMIT_PER_MINUTE": "0",
            "API_STORE_PROBE_S": "0.5",
            **settings,
        }
    )
    if database_url is not None:
        env["MUSHROOM_DATABASE_URL"] = database_url
    # The server's default workers (one per core), as `mushroom-api` runs in a replica.
    return ApiProcess(start_server_process(home, env, ready_timeout_s=300, workers=None))
