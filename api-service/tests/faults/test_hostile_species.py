"""Issue 25 item 10: /species (about 300 KB) pipelined by a crowd that never reads its answers.

Before the fix every request built and serialised the whole list again, without a rate limit,
and /predict stalled for about a minute; the list is now built once per served model, revalidated
by ETag, and each address may ask for it a bounded number of times a minute.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_api_process import random_photo
from mushroom_faults_kit import ApiProcess, demo_server

ADDRESSES = 10
CONNECTIONS = 10
PIPELINED = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    root = tmp_path_factory.mktemp("species")
    with demo_server(root, tiny_tflite, API_SPECIES_RATE_LIMIT_PER_MINUTE="30") as api:
        yield api


def test_a_pipelining_crowd_on_species_does_not_stall_predict(server: ApiProcess) -> None:
    request = b"GET /species HTTP/1.1\r\nHost: a\r\n\r\n" * PIPELINED
    crowd: list[socket.socket] = []
    latencies: list[float] = []
    try:
        for n in range(ADDRESSES):
            for _ in range(CONNECTIONS):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.bind((f"127.0.1.{n + 1}", 0))
                sock.settimeout(5)
                sock.connect(("127.0.0.1", server.port))
                with contextlib.suppress(OSError):
                    sock.sendall(request)
                crowd.append(sock)
        time.sleep(1.0)  # the crowd's first answers are under way; it never reads them
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for seed in range(12):
                files = {"file": ("p.jpg", random_photo(seed), "image/jpeg")}
                started = time.perf_counter()
                assert client.post("/predict", files=files).status_code == 200
                latencies.append(time.perf_counter() - started)
    finally:
        for sock in crowd:
            sock.close()
    worst = max(latencies)
    ranked = [round(latency, 2) for latency in latencies]
    assert worst < 1.0, f"/predict took up to {worst:.2f} s next to the /species crowd: {ranked}"


def test_species_is_rate_limited_and_revalidated(server: ApiProcess) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.2.1")
    with httpx.Client(base_url=server.base_url, timeout=10, transport=transport) as client:
        first = client.get("/species")
        assert first.status_code == 200
        assert first.json()[0]["id"]
        etag = first.headers["etag"]
        assert "max-age" in first.headers["cache-control"]
        again = client.get("/species", headers={"If-None-Match": etag})
        assert again.status_code == 304
        statuses = [client.get("/species").status_code for _ in range(40)]
        assert 429 in statuses, statuses
