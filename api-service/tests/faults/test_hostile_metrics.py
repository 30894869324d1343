"""Issue 25 items 5 and 11 (/metrics): labels from closed sets, a page rendered off the event loop,
and the counts per species behind the admin token.

Before the fix 3,000 requests with made-up 2,000-character methods grew /metrics to 115 MB and a
scrape blocked /healthz for seconds; here 300 such requests must leave the page small.
"""

from __future__ import annotations

import contextlib
import random
import socket
import string
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_api_process import random_photo
from mushroom_faults_kit import ApiProcess, demo_server, read_response_head

METHODS = 300
METHOD_LENGTH = 2000
AUTH = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    with demo_server(tmp_path_factory.mktemp("metrics"), tiny_tflite) as api:
        yield api


def _made_up_method(port: int, rng: random.Random) -> None:
    method = "".join(rng.choices(string.ascii_uppercase, k=METHOD_LENGTH))
    path = "/" + "".join(rng.choices(string.ascii_lowercase, k=40))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        contextlib.suppress(OSError),
    ):
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        read_response_head(sock, 5)


def test_made_up_methods_and_paths_fold_into_one_label(server: ApiProcess) -> None:
    rng = random.Random(25)
    started = time.monotonic()
    for _ in range(METHODS):
        _made_up_method(server.port, rng)
    assert time.monotonic() - started < 60
    with server.client() as client:
        page = client.get("/metrics")
        assert page.status_code == 200
        size = len(page.content)
        assert size < 200_000, f"/metrics is {size} bytes after {METHODS} made-up methods"
        assert 'method="other"' in page.text
        assert 'route="unmatched"' in page.text
        # Scrapes never hold up liveness: rendered in a thread, reused while it is fresh.
        worst = 0.0
        for _ in range(5):
            tick = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            worst = max(worst, time.perf_counter() - tick)
            client.get("/metrics")
        assert worst < 0.5, f"/healthz took {worst:.2f} s next to scrapes"


def test_counts_per_species_need_the_admin_token(server: ApiProcess) -> None:
    with server.client() as client:
        answer = client.post(
            "/predict", files={"file": ("p.jpg", random_photo(3), "image/jpeg")}
        ).json()
        species = answer["predictions"][0]["species"]
        public = client.get("/metrics").text
        assert f'verdict="{answer["verdict"]}"' in public
        assert species not in public
        private = client.get("/metrics", headers=AUTH)
        assert private.status_code == 200
        assert f'species="{species}"' in private.text
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
