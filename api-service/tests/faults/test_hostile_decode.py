"""Issue 25 items 1 and 2: one client's photos must not take the decoder's CPU or memory.

1. JPEG scan bomb: a small progressive JPEG whose scan is repeated hundreds of times decodes the
   whole image once per scan. Bombs sent by clients that hang up after a second kept the server
   decoding long after they had gone, and a normal /predict waited behind them.
2. Decode memory: a progressive JPEG's decoder holds the coefficients of the full image whatever
   the draft scale, WebP's decoder the full RGBA picture twice; the budget counted neither.
   `/feedback/{id}/photo` decoded the photo before it compared its hash.

Each test attacks a real server process on loopback and reads its CPU time and peak resident
memory from /proc; the numbers are logged (run with `-o log_cli=true -o log_cli_level=INFO`).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from mushroom_faults_kit import (
    ApiProcess,
    demo_server,
    multipart_head,
    peak_growth_mb,
    predict_and_share,
)
from PIL import Image

from mushroom_common.imaging_samples import sample_photos, scan_bomb

logger = logging.getLogger(__name__)
TICKS = os.sysconf("SC_CLK_TCK")
BOMB_REPEATS = 300
ATTACK_S = 6.0
ATTACKERS = 8


def _progressive_gradient(side: int, subsampling: int = 2) -> bytes:
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, progressive=True, subsampling=subsampling)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 4000x4000 progressive JPEG with one refinement scan repeated 300 times (about 160 KB)."""
    return scan_bomb(_progressive_gradient(4000), BOMB_REPEATS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    warm = sample_photos(320, 240)["RGB JPEG"]
    with demo_server(
        tmp_path_factory.mktemp("decode"), tiny_tflite, ("w.jpg", warm, "image/jpeg")
    ) as api:
        yield api


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _abandoned_upload(port: int, data: bytes, hold_s: float) -> None:
    """POST /predict with `data`, then hang up after `hold_s` without reading the answer."""
    boundary = "decodebomb"
    body = multipart_head(boundary) + data + f"\r\n--{boundary}--\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        time.sleep(hold_s)


def _attack(server: ApiProcess, data: bytes) -> tuple[list[int], list[float], float, float]:
    """8 clients send `data` and hang up after 1 s, again and again for 6 s, while one client
    sends normal photos. Returns the normal statuses and latencies, the server's CPU seconds
    during the attack and in the 4 s after it."""
    normal = sample_photos(640, 480, seed=3)["RGB JPEG"]
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set():
            try:
                _abandoned_upload(server.port, data, 1.0)
            except OSError:
                time.sleep(0.1)

    cpu_start = cpu_seconds(server.pid)
    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    statuses: list[int] = []
    latencies: list[float] = []
    deadline = time.monotonic() + ATTACK_S
    with server.client(timeout=30) as client:
        time.sleep(0.5)
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = client.post(
                    "/predict", files={"file": ("n.jpg", normal, "image/jpeg")}
                ).status_code
            except httpx.TimeoutException:
                status = 0
            latencies.append(time.monotonic() - started)
            statuses.append(status)
            time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    cpu_attack = cpu_seconds(server.pid) - cpu_start
    time.sleep(4.0)
    cpu_after = cpu_seconds(server.pid) - cpu_start - cpu_attack
    return statuses, latencies, cpu_attack, cpu_after


def test_a_scan_bomb_is_refused_from_its_markers(server: ApiProcess, bomb: bytes) -> None:
    with server.client(timeout=60) as client:
        started = time.monotonic()
        cpu_start = cpu_seconds(server.pid)
        answer = client.post("/predict", files={"file": ("b.jpg", bomb, "image/jpeg")})
        cpu = cpu_seconds(server.pid) - cpu_start
        seconds = time.monotonic() - started
    logger.info(
        "one scan bomb (%d KB): %d in %.2f s, server CPU %.2f s",
        len(bomb) // 1024,
        answer.status_code,
        seconds,
        cpu,
    )
    assert answer.status_code == 422, answer.text
    assert f"This JPEG has {BOMB_REPEATS + 10} scans; at most 32" in answer.json()["detail"]
    assert cpu < 0.5


def test_abandoned_scan_bombs_leave_no_work_and_predict_keeps_its_latency(
    server: ApiProcess, bomb: bytes
) -> None:
    statuses, latencies, cpu_attack, cpu_after = _attack(server, bomb)
    p99 = float(np.percentile(latencies, 99))
    logger.info(
        "scan bombs from %d clients for %.0f s: normal /predict %s, p99 %.2f s; server CPU "
        "%.1f s during, %.1f s after",
        ATTACKERS,
        ATTACK_S,
        sorted(set(statuses)),
        p99,
        cpu_attack,
        cpu_after,
    )
    assert statuses
    assert set(statuses) == {200}
    assert p99 < 1.0
    assert cpu_after < 0.5, "the server kept decoding after the clients had gone"


def test_progressive_jpeg_memory_is_counted_before_draft(server: ApiProcess) -> None:
    # 6300x6300, no chroma subsampling: 238 MB of DCT coefficients, whatever the draft scale.
    data = _progressive_gradient(6300, subsampling=0)
    answers: list[httpx.Response] = []

    def post() -> None:
        with server.client(timeout=60) as client:
            answers.append(client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")}))

    growth = peak_growth_mb(server.pid, post)
    logger.info(
        "progressive 6300x6300 JPEG (%d KB): %d, peak RSS +%.0f MB",
        len(data) // 1024,
        answers[0].status_code,
        growth,
    )
    assert answers[0].status_code == 422, answers[0].text
    assert "too large to decode" in answers[0].json()["detail"]
    assert growth < 40


def test_eight_big_webps_at_once_stay_small(server: ApiProcess) -> None:
    image = Image.linear_gradient("L").resize((4890, 4890)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=80)
    data = buffer.getvalue()
    statuses: list[int] = []

    def eight() -> None:
        def post() -> None:
            with server.client(timeout=60) as client:
                files = {"file": ("w.webp", data, "image/webp")}
                statuses.append(client.post("/predict", files=files).status_code)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    growth = peak_growth_mb(server.pid, eight)
    logger.info(
        "8 WebPs 4890x4890 (%d KB) at once: %s, peak RSS +%.0f MB",
        len(data) // 1024,
        statuses,
        growth,
    )
    assert statuses == [422] * 8
    assert growth < 60


def test_feedback_photo_checks_its_hash_before_decoding(server: ApiProcess) -> None:
    photo = sample_photos(320, 240, seed=5)["RGB JPEG"]
    other = _progressive_gradient(4800, subsampling=0)
    with server.client(timeout=60) as client:
        path = f"/feedback/{predict_and_share(client, photo)}/photo"
        answers: list[httpx.Response] = []
        growth = peak_growth_mb(
            server.pid,
            lambda: answers.append(
                client.post(path, files={"file": ("o.jpg", other, "image/jpeg")})
            ),
        )
        same = client.post(path, files={"file": ("p.jpg", photo, "image/jpeg")})
    logger.info(
        "feedback photo, another 4800x4800 progressive JPEG: %d, peak RSS +%.0f MB",
        answers[0].status_code,
        growth,
    )
    assert answers[0].status_code == 422
    assert "not the photo that was identified" in answers[0].json()["detail"]
    assert growth < 20
    assert same.status_code == 200, same.text
