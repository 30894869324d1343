"""Issue 15 item 1: photos under the pixel limit must not blow the server's memory up.

A 77 KB PNG can declare 6000x6600 pixels of 16-bit grey; decoding it naively took about 1 GB
of resident memory per request. The server process's peak RSS is read from /proc.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_faults_kit import (
    ApiProcess,
    demo_server,
    peak_growth_mb,
    raw_png,
    rss_mb,
)

WIDTH, HEIGHT = 6000, 6600  # 39.6 megapixels: under the 40-megapixel limit
PER_REQUEST_LIMIT_MB = 150
CONCURRENT_LIMIT_MB = 400

BOMBS = {
    "16-bit grey": (16, 1),
    "16-bit RGBA": (16, 4),
    "8-bit RGB": (8, 3),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    warm = raw_png(640, 480, 8, 3)
    with demo_server(
        tmp_path_factory.mktemp("memory"), tiny_tflite, ("w.png", warm, "image/png")
    ) as api:
        yield api


def _post(server: ApiProcess, data: bytes) -> httpx.Response:
    with server.client(timeout=60) as client:
        return client.post("/predict", files={"file": ("bomb.png", data, "image/png")})


@pytest.mark.parametrize("kind", list(BOMBS))
def test_one_big_png_stays_under_150_mb(server: ApiProcess, kind: str) -> None:
    depth, channels = BOMBS[kind]
    data = raw_png(WIDTH, HEIGHT, depth, channels)
    assert len(data) < 1024 * 1024
    answers: list[httpx.Response] = []
    growth = peak_growth_mb(server.pid, lambda: answers.append(_post(server, data)))
    answer = answers[0]
    # Decoded within the budget (200), or refused with a sentence before decoding (422).
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert "too large to decode" in answer.json()["detail"]
    assert growth < PER_REQUEST_LIMIT_MB, f"{kind}: peak RSS grew {growth:.0f} MB"


def test_sixteen_bit_grey_is_decoded_not_refused(server: ApiProcess) -> None:
    answer = _post(server, raw_png(WIDTH, HEIGHT, 16, 1))
    assert answer.status_code == 200, answer.text


def test_four_big_pngs_at_once_stay_under_400_mb(server: ApiProcess) -> None:
    data = raw_png(WIDTH, HEIGHT, 16, 1)
    statuses: list[int] = []

    def four_at_once() -> None:
        threads = [
            threading.Thread(target=lambda: statuses.append(_post(server, data).status_code))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    growth = peak_growth_mb(server.pid, four_at_once)
    assert statuses == [200] * 4
    assert growth < CONCURRENT_LIMIT_MB, f"4 concurrent: peak RSS grew {growth:.0f} MB"
    assert rss_mb(server.pid) > 0
