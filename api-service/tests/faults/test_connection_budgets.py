"""Issue 25 items 3, 4, 9 and 11 (CL+TE): connection budgets one client cannot exhaust.

- Sockets that declare a body and send nothing, or trickle it, are closed and give their upload
  budget back (before: every /predict 503 for as long as they waited).
- Idle sockets from many addresses do not take /healthz or /predict down (before: 503), and one
  address holds at most its share of connections.
- The header limit counts the whole block, also when it arrives in one write (before: 200).
- A request with both Content-Length and Transfer-Encoding is answered and its connection closed.
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
from mushroom_faults_kit import (
    MB,
    ApiProcess,
    api_env,
    make_demo,
    read_response_head,
    start_api,
    start_held_upload,
)

HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 6
MAX_CONNECTIONS = 300
PER_ADDRESS = 16
HELD = 8
HELD_BODY = 15 * MB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    root = tmp_path_factory.mktemp("budgets")
    env = api_env(
        root,
        make_demo(root, tiny_tflite),
        API_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        API_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        API_MIN_BODY_BYTES_PER_S="2048",
        API_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        API_MAX_CONNECTIONS_PER_ADDRESS=str(PER_ADDRESS),
        API_UPLOAD_BUDGET_BYTES=str(HELD * HELD_BODY),
    )
    api = start_api(root, env)
    try:
        yield api
    finally:
        api.stop()


def _predict(server: ApiProcess, seed: int = 1, source: str = "127.0.0.1") -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.base_url, timeout=10, transport=transport) as client:
        files = {"file": ("p.jpg", random_photo(seed), "image/jpeg")}
        return client.post("/predict", files=files).status_code


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_silent_bodies_give_their_upload_slots_back(server: ApiProcess) -> None:
    # 15 MB declared each: the upload budget holds 8, then any /predict gets 503.
    held = [start_held_upload(server.port, HELD_BODY, 1024) for _ in range(HELD)]
    try:
        time.sleep(0.3)
        assert _predict(server) == 503, "the held bodies should fill the upload budget"
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < BODY_TIMEOUT_S + 4:
            statuses.append(_predict(server, len(statuses) + 2))
            if statuses[-1] == 200:
                break
            time.sleep(0.25)
        waited = time.monotonic() - started
        assert statuses[-1] == 200, f"/predict still {statuses[-5:]} after {waited:.1f} s"
        assert waited < HEADER_TIMEOUT_S + 3
        assert all(_closed_by_server(sock, 2) for sock in held)
    finally:
        for sock in held:
            sock.close()


def test_a_trickled_body_is_cut_off(server: ApiProcess) -> None:
    sock = start_held_upload(server.port, 1 * MB, 300)
    try:
        started = time.monotonic()
        closed = False
        with contextlib.suppress(OSError):
            while time.monotonic() - started < BODY_TIMEOUT_S + 3:
                sock.sendall(b"x" * 100)  # 200 bytes a second: under the 2 KB/s minimum
                time.sleep(0.5)
        closed = _closed_by_server(sock, 3)
        elapsed = time.monotonic() - started
        assert closed
        assert elapsed < BODY_TIMEOUT_S + 4, f"a trickle held its socket for {elapsed:.1f} s"
    finally:
        sock.close()


def test_idle_crowds_from_many_addresses_leave_liveness_and_predict_up(
    server: ApiProcess,
) -> None:
    idle: list[socket.socket] = []
    try:
        for n in range(20):
            for _ in range(30):  # 600 sockets: twice the connection limit
                sock = socket.socket()
                sock.bind((f"127.0.0.{n + 2}", 0))
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", server.port))
                idle.append(sock)
        time.sleep(0.5)
        health = [httpx.get(f"{server.base_url}/healthz", timeout=5).status_code for _ in range(10)]
        assert health == [200] * 10, health
        assert _predict(server, 40) == 200
        assert _predict(server, 41, source="127.0.0.2") == 200, "an address with idle sockets"
    finally:
        for sock in idle:
            sock.close()


def test_one_address_holds_at_most_its_share(server: ApiProcess) -> None:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(60)]
    try:
        time.sleep(0.5)
        open_now = sum(not _closed_by_server(sock, 0.05) for sock in socks)
        assert open_now <= PER_ADDRESS, f"{open_now} idle connections from one address"
    finally:
        for sock in socks:
            sock.close()


def _raw(server: ApiProcess, request: bytes) -> tuple[str, bool]:
    """The response head, and whether the server closed the connection after it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        head = read_response_head(sock, 10)
        return head, _closed_by_server(sock, 3)


@pytest.mark.parametrize("shape", ["one_big_header", "many_lines"])
def test_the_header_limit_counts_a_block_sent_in_one_write(server: ApiProcess, shape: str) -> None:
    if shape == "one_big_header":
        extra = b"X-Big: " + b"a" * (60 * 1024) + b"\r\n"
    else:
        extra = b"".join(b"X-%d: v\r\n" % n for n in range(10_000))
    head, _closed = _raw(server, b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + extra + b"\r\n")
    assert head.startswith("HTTP/1.1 431"), head[:80]
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def test_content_length_with_chunked_is_refused_and_closed(server: ApiProcess) -> None:
    body = b'{"request_id": "x", "correct": true}'
    head, closed = _raw(
        server,
        b"POST /feedback HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
        % len(body)
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n",
    )
    assert head.startswith("HTTP/1.1 400"), head[:80]
    assert closed, "the connection of a request with Content-Length and chunked stays open"
