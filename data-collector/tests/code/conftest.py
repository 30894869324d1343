"""Shared fixtures: storage, generated photos (pHashes far apart), a fake iNaturalist server."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from PIL import Image

from mushroom_collector.config import get_settings
from mushroom_common.storage import LocalStorage

MakeJpeg = Callable[..., bytes]


def make_jpeg_bytes(seed: int, size: tuple[int, int] = (128, 96), quality: int = 90) -> bytes:
    """A smooth random picture: different seeds give pHashes >= 14 bits apart."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def near_copy_bytes(data: bytes, scale: float = 0.75, quality: int = 60) -> bytes:
    """The same picture, resized and recompressed (different bytes, near-same pHash)."""
    image = Image.open(io.BytesIO(data))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture
def make_jpeg() -> MakeJpeg:
    return make_jpeg_bytes


@pytest.fixture
def near_copy() -> Callable[..., bytes]:
    return near_copy_bytes


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("COLLECTOR_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@dataclass
class LoggedRequest:
    """One request the fake server received."""

    at: float
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeInat:
    """A local stand-in for the iNaturalist API v1 and its photo host, shaped like the real one.

    Like the real API it caps `per_page` (at `page_cap`, 200 on the real one), filters
    observations by `photo_license` (an observation matches when one of its photos does, and
    still lists all its photos) and pages by `id_above`.
    """

    host: str = ""
    taxa: dict[str, int] = field(default_factory=dict)
    observations: list[dict[str, Any]] = field(default_factory=list)
    photos: dict[str, bytes] = field(default_factory=dict)
    page_cap: int = 10
    photo_delay_s: float = 0.0
    faults: dict[str, deque[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"{self.host}/v1"

    def photo_url(self, photo_id: int, size: str = "square") -> str:
        return f"{self.host}/photos/{photo_id}/{size}.jpg?1700000000"

    def add_observation(
        self, obs_id: int, taxon_id: int, photos: list[tuple[int, str | None, bytes | None]]
    ) -> None:
        """photos: (photo id, licence code or None for all rights reserved, bytes or None=404)."""
        login = f"observer{obs_id % 4}"
        entries = []
        for photo_id, license_code, data in photos:
            if data is not None:
                self.photos[f"/photos/{photo_id}/medium.jpg"] = data
            holder = f"(c) {login}"
            rights = (
                f"some rights reserved ({license_code.upper()})"
                if license_code
                else ("all rights reserved")
            )
            entries.append(
                {
                    "id": photo_id,
                    "license_code": license_code,
                    "attribution": f"{holder}, {rights}",
                    "url": self.photo_url(photo_id),
                    "original_dimensions": {"width": 128, "height": 96},
                }
            )
        self.observations.append(
            {
                "id": obs_id,
                "uri": f"https://www.inaturalist.org/observations/{obs_id}",
                "quality_grade": "research",
                "observed_on": "2024-09-01",
                "license_code": "cc-by",
                "taxon": {"id": taxon_id, "rank": "species"},
                "user": {"id": obs_id % 4, "login": login},
                "photos": entries,
            }
        )

    def fail_next(self, path_prefix: str, *responses: tuple[int, dict[str, str]]) -> None:
        """Answer the next requests under path_prefix with these (status, headers)."""
        self.faults.setdefault(path_prefix, deque()).extend(responses)

    def requests_to(self, prefix: str) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            for prefix, queue in self.faults.items():
                if path.startswith(prefix) and queue:
                    status, headers = queue.popleft()
                    return status, headers, b'{"error": "injected"}'
        if path == "/v1/taxa":
            name = params.get("q", "").casefold()
            results = [
                {"id": tid, "name": n, "rank": "species", "matched_term": n}
                for n, tid in self.taxa.items()
                if name in n.casefold()
            ]
            return self._json(
                {"total_results": len(results), "page": 1, "per_page": 30, "results": results}
            )
        if path == "/v1/observations":
            return self._observations(params)
        if path.startswith("/photos/"):
            time.sleep(self.photo_delay_s)
            data = self.photos.get(path)
            if data is None:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            return 200, {"Content-Type": "image/jpeg"}, data
        return 404, {"Content-Type": "application/json"}, b'{"error": "not found"}'

    def _observations(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        taxon_id = int(params["taxon_id"])
        id_above = int(params.get("id_above", "0"))
        allowed = {c.strip().lower() for c in params.get("photo_license", "").split(",") if c}
        matching = [
            o
            for o in sorted(self.observations, key=lambda o: o["id"])
            if o["taxon"]["id"] == taxon_id
            and o["id"] > id_above
            and (not allowed or any((p["license_code"] or "") in allowed for p in o["photos"]))
        ]
        per_page = min(int(params.get("per_page", "30")), self.page_cap)
        return self._json(
            {
                "total_results": len(matching),
                "page": 1,
                "per_page": per_page,
                "results": matching[:per_page],
            }
        )

    @staticmethod
    def _json(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture
def fake_inat() -> Iterator[FakeInat]:
    fake = FakeInat(taxa={"Boletus edulis": 48701, "Cantharellus cibarius": 47347})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))
            with fake.lock:
                fake.requests.append(
                    LoggedRequest(time.monotonic(), url.path, params, dict(self.headers))
                )
            status, headers, body = fake.answer(url.path, params)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
