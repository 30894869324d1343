"""A real uvicorn server on 127.0.0.1: startup, predict, hot reload under load, streaming."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
from mushroom_api_testkit import GREEN, RED, BundleFactory, PhotoFactory, free_port

from mushroom_api.config import Settings
from mushroom_common.bundle import BundleMetadata

Publish = Callable[[Path, Path, BundleMetadata], None]


def test_live_server_answers(live_server: str, photo: PhotoFactory) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as client:
        assert client.get("/readyz").json() == {"status": "ok"}
        response = client.post("/predict", files={"file": ("p.jpg", photo(RED), "image/jpeg")})
        assert response.status_code == 200
        assert response.json()["verdict"] == "dangerous"


def test_reload_during_a_stream_of_requests_drops_none(
    live_server: str,
    settings: Settings,
    tmp_path: Path,
    bundle_factory: BundleFactory,
    publish: Publish,
    photo: PhotoFactory,
) -> None:
    data = photo(GREEN)
    stop = threading.Event()
    results: list[tuple[float, int, str]] = []  # (start time, status, version)
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=live_server, timeout=20) as client:
            while not stop.is_set():
                started = time.monotonic()
                response = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")})
                version = response.json()["model"]["version"] if response.status_code == 200 else ""
                with lock:
                    results.append((started, response.status_code, version))

    workers = [threading.Thread(target=hammer) for _ in range(6)]
    for worker in workers:
        worker.start()
    reloaded_at: list[float] = []
    try:
        storage_root = Path(str(settings.storage_uri))
        with httpx.Client(base_url=live_server, timeout=30) as admin:
            for version in ("v2", "v3"):
                time.sleep(0.4)
                bundle = tmp_path / "build" / version
                publish(storage_root, bundle, bundle_factory(bundle, version=version))
                answer = admin.post(
                    "/admin/reload", headers={"Authorization": "Bearer test-admin-token"}
                )
                assert answer.status_code == 200
                assert answer.json()["version"] == version
                reloaded_at.append(time.monotonic())
        time.sleep(0.4)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

    statuses = {status for _, status, _ in results}
    assert statuses == {200}, f"some requests failed: {statuses}"
    versions = {version for _, _, version in results}
    assert versions == {"demo-1", "v2", "v3"}
    after_last = [version for started, _, version in results if started > reloaded_at[-1]]
    assert after_last
    assert set(after_last) == {"v3"}
    assert len(results) > 30


def test_streamed_upload_is_cut_off_at_the_limit(live_server: str) -> None:
    """A chunked upload (no Content-Length) is refused once it passes 15 MB, not after 40."""
    url = urlparse(live_server)
    boundary = "mushroomboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    chunk = bytes(1024 * 1024)
    sent_mb = 0
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /predict HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        try:
            for _ in range(40):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent_mb += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = sock.recv(65536).decode("latin-1")
    assert response.startswith("HTTP/1.1 413"), response[:200]
    assert "too large" in response
    assert sent_mb < 40


def _api_env(tmp_path: Path, demo_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MUSHROOM_STORAGE_URI": str(tmp_path / "storage"),
        "API_FALLBACK_BUNDLE_DIR": str(demo_dir),
        "API_MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "API_FRONTEND_DIR": "",
        "API_ENV": "development",
    }


def test_mushroom_api_command_serves_the_demo_model(
    tmp_path: Path, demo_dir: Path, photo: PhotoFactory
) -> None:
    port = free_port()
    command = Path(sys.executable).parent / "mushroom-api"
    process = subprocess.Popen(
        [str(command), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=_api_env(tmp_path, demo_dir),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "mushroom-api exited"
            assert time.monotonic() < deadline, "mushroom-api did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        response = httpx.post(
            f"{base}/predict", files={"file": ("p.jpg", photo(GREEN), "image/jpeg")}, timeout=10
        )
        assert response.status_code == 200
        assert response.json()["verdict"] == "edible"
    finally:
        process.terminate()
        process.wait(timeout=20)


NO_TF_SCRIPT = """
import sys
from fastapi.testclient import TestClient
from mushroom_api.config import Settings
from mushroom_api.main import create_app
with TestClient(create_app(Settings())) as client:
    assert client.get("/readyz").status_code == 200, client.get("/readyz").text
    image = open(sys.argv[1], "rb").read()
    answer = client.post("/predict", files={"file": ("p.jpg", image, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    client.post("/explain", files={"file": ("p.jpg", image, "image/jpeg")}).raise_for_status()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
assert not loaded, loaded
"""


def test_the_api_runtime_never_imports_tensorflow(
    tmp_path: Path, demo_dir: Path, photo: PhotoFactory
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo(RED))
    result = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT, str(image)],
        env=_api_env(tmp_path, demo_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
