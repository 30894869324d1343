"""Issue 15 items 4, 5, 9, 10 and 11 (full disk): storage outages, full disks, big uploads.

Every server here is a real process; GCS is the real emulator, stopped to make an outage, and a
full disk is a 5 MB tmpfs mounted (in a private mount namespace) as the storage root.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mushroom_api_testkit import (
    GREEN,
    assert_same_pixels_without_metadata,
    free_port,
    make_bundle,
    photo_bytes,
)
from mushroom_faults_kit import (
    MB,
    ApiProcess,
    api_env,
    jpeg_with_gps,
    make_demo,
    open_fds_under,
    predict_and_share,
    read_response_head,
    start_api,
    start_held_upload,
)
from PIL import Image

from mushroom_common.storage import LocalStorage

PROBE_TIMEOUT_S = 3.0


def _timed_get(base_url: str, path: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = httpx.get(f"{base_url}{path}", timeout=30).status_code
    except httpx.TransportError:
        status = 0
    return status, time.monotonic() - started


@pytest.mark.slow
def test_a_storage_outage_never_starves_probes_or_predictions(
    gcs_emulator: tuple[Any, str], tmp_path: Path, tiny_tflite: Path
) -> None:
    emulator, uri = gcs_emulator
    env = api_env(
        tmp_path,
        make_demo(tmp_path, tiny_tflite),
        MUSHROOM_STORAGE_URI=uri,
        STORAGE_EMULATOR_HOST=emulator.host,
        GOOGLE_CLOUD_PROJECT="test-project",
        # As in the cluster: every storage call retries for 30 s before giving up.
        MUSHROOM_STORAGE_RETRY_DEADLINE_S="30",
    )
    server = start_api(tmp_path, env)
    try:
        photos = [photo_bytes((number, 200, 40)) for number in range(40)]
        with server.client() as client:
            feedback_ids = [predict_and_share(client, data) for data in photos]
        emulator.stop()

        uploads: list[tuple[int, str | None, float]] = []
        lock = threading.Lock()

        def upload(feedback_id: str, data: bytes) -> None:
            started = time.monotonic()
            answer = httpx.post(
                f"{server.base_url}/feedback/{feedback_id}/photo",
                files={"file": ("p.jpg", data, "image/jpeg")},
                timeout=60,
            )
            with lock:
                uploads.append(
                    (
                        answer.status_code,
                        answer.headers.get("retry-after"),
                        time.monotonic() - started,
                    )
                )

        threads = [
            threading.Thread(target=upload, args=pair)
            for pair in zip(feedback_ids, photos, strict=True)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        probes = {path: _timed_get(server.base_url, path) for path in ("/healthz", "/readyz")}
        started = time.monotonic()
        predicted = httpx.post(
            f"{server.base_url}/predict",
            files={"file": ("p.jpg", photo_bytes(GREEN), "image/jpeg")},
            timeout=60,
        )
        predict_s = time.monotonic() - started
        for thread in threads:
            thread.join(timeout=90)
    finally:
        server.stop()

    for path, (status, seconds) in probes.items():
        assert status == 200, path
        assert seconds < PROBE_TIMEOUT_S, f"{path} took {seconds:.1f} s"
    assert predicted.status_code == 200
    assert predict_s < PROBE_TIMEOUT_S, f"/predict took {predict_s:.1f} s"
    assert len(uploads) == 40
    for status, retry_after, seconds in uploads:
        assert status == 503
        assert retry_after is not None
        assert int(retry_after) > 0
        assert seconds < PROBE_TIMEOUT_S + 2, f"an upload waited {seconds:.1f} s for its 503"


def _unreachable_gcs_env(tmp_path: Path, demo: Path) -> dict[str, str]:
    return api_env(
        tmp_path,
        demo,
        MUSHROOM_STORAGE_URI="gs://unreachable-bucket/data",
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}",  # nobody listens there
        GOOGLE_CLOUD_PROJECT="test-project",
        MUSHROOM_STORAGE_RETRY_DEADLINE_S="2",
    )


def test_startup_with_gcs_unreachable_serves_the_demo_model_and_says_why(
    tmp_path: Path, tiny_tflite: Path
) -> None:
    started = time.monotonic()
    server = start_api(tmp_path, _unreachable_gcs_env(tmp_path, make_demo(tmp_path, tiny_tflite)))
    try:
        with server.client() as client:
            ready = client.get("/readyz")
            answer = client.post(
                "/predict", files={"file": ("p.jpg", photo_bytes(GREEN), "image/jpeg")}
            )
        startup_s = time.monotonic() - started
        log = server.log()
    finally:
        server.stop()
    assert startup_s < 20, f"startup took {startup_s:.0f} s"
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert "registry cannot be read" in ready.json()["reason"]
    assert "demo model" in ready.json()["reason"]
    assert "gs://" not in ready.text
    assert answer.status_code == 200
    assert answer.json()["model"]["version"] == "demo-1"
    assert "attempt 1 failed" in log
    assert "attempt 2 failed" in log
    assert "Traceback" not in log


def test_startup_with_gcs_unreachable_prefers_the_cached_champion(
    tmp_path: Path, tiny_tflite: Path
) -> None:
    make_bundle(tiny_tflite, tmp_path / "cache" / "mushroom" / "v7", version="v7")
    server = start_api(tmp_path, _unreachable_gcs_env(tmp_path, make_demo(tmp_path, tiny_tflite)))
    try:
        with server.client() as client:
            ready = client.get("/readyz").json()
            model = client.get("/model").json()
    finally:
        server.stop()
    assert ready["status"] == "degraded"
    assert "last cached champion" in ready["reason"]
    assert model["version"] == "v7"


@pytest.fixture
def local_server(tmp_path: Path, tiny_tflite: Path) -> Iterator[ApiProcess]:
    server = start_api(tmp_path, api_env(tmp_path, make_demo(tmp_path, tiny_tflite)))
    try:
        yield server
    finally:
        server.stop()


def test_a_shared_photo_is_stored_without_gps_or_camera(local_server: ApiProcess) -> None:
    data = jpeg_with_gps(camera="FaultCam X100")
    assert b"FaultCam X100" in data
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    with local_server.client() as client:
        feedback_id = predict_and_share(client, data)
        stored = client.post(
            f"/feedback/{feedback_id}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
        )
    assert stored.status_code == 200, stored.text
    storage = LocalStorage(local_server.root / "storage")
    kept = storage.read_bytes(f"feedback/photos/{hashlib.sha256(data).hexdigest()}.jpg")
    assert b"FaultCam" not in kept
    assert b"GPS" not in kept
    assert b"2026:09:14" not in kept
    assert_same_pixels_without_metadata(kept, data)


def test_uploads_stay_in_memory_within_a_global_budget(tmp_path: Path, tiny_tflite: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    env = api_env(
        tmp_path,
        make_demo(tmp_path, tiny_tflite),
        API_MAX_UPLOAD_BYTES=str(4 * MB),
        API_UPLOAD_BUDGET_BYTES=str(7 * MB),
        TMPDIR=str(spool),
    )
    server = start_api(tmp_path, env)
    held = []
    try:
        # Three 2 MB uploads in flight (1.5 MB of each sent): 6 of the 7 MB budget.
        held = [start_held_upload(server.port, 2 * MB, 3 * MB // 2) for _ in range(3)]
        time.sleep(1.0)
        spooled = open_fds_under(server.pid, spool)
        over = start_held_upload(server.port, 2 * MB, 1024)
        refused = read_response_head(over)
        over.close()
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.5)
        with server.client() as client:
            after = client.post(
                "/predict", files={"file": ("p.jpg", photo_bytes(GREEN), "image/jpeg")}
            )
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert spooled == [], f"uploads were spooled to disk: {spooled}"
    assert refused.startswith("HTTP/1.1 503"), refused[:200]
    assert "retry-after: 2" in refused.lower()
    assert after.status_code == 200


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a tmpfs")
def test_a_full_disk_while_storing_a_photo_is_503(tmp_path: Path, tiny_tflite: Path) -> None:
    disk = tmp_path / "full-disk"
    disk.mkdir()
    env = api_env(tmp_path, make_demo(tmp_path, tiny_tflite), MUSHROOM_STORAGE_URI=str(disk))
    # A private mount namespace: a 5 MB tmpfs at `disk`, filled up, visible to the server only.
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs -o size=5m tmpfs "{disk}" && '
        f'(head -c 6000000 /dev/zero > "{disk}/filler" 2>/dev/null || true) && exec "$@"',
        "sh",
    ]
    try:
        server = start_api(tmp_path, env, wrapper=wrapper)
    except RuntimeError as exc:
        if "mount" in str(exc) and "permission" in str(exc).lower():
            pytest.skip("mounting a tmpfs needs CAP_SYS_ADMIN")
        raise
    try:
        data = photo_bytes(GREEN, size=(640, 480))
        with server.client() as client:
            feedback_id = predict_and_share(client, data)
            stored = client.post(
                f"/feedback/{feedback_id}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
            )
            alive = client.get("/healthz")
    finally:
        server.stop()
    assert stored.status_code == 503, stored.text
    assert int(stored.headers["retry-after"]) > 0
    assert "try again" in stored.json()["detail"]
    assert alive.status_code == 200
    assert "Traceback" not in server.log()
