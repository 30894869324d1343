"""The fault suite's tools: a real `mushroom-api` server process, its memory, raw sockets, photos.

The server runs as its own process (`python -m mushroom_api.cli`, the container's entry point),
so its resident memory can be read from /proc, its open-file limit set, and its log read back.
"""

from __future__ import annotations

import io
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from mushroom_api_testkit import free_port, make_bundle
from PIL import Image

MB = 1024 * 1024


@dataclass
class ApiProcess:
    """A running API server process."""

    process: subprocess.Popen[bytes]
    base_url: str
    port: int
    log_path: Path
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The server's process id (the Python process, also under a wrapper that execs)."""
        return self.process.pid

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_bytes().decode("utf-8", "backslashreplace")

    def raw_log(self) -> bytes:
        """The server's log as bytes (to look for raw control characters)."""
        return self.log_path.read_bytes()

    def client(self, timeout: float = 20.0) -> httpx.Client:
        """An HTTP client for this server."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def make_demo(root: Path, tiny_tflite: Path) -> Path:
    """A demo (fallback) bundle of the tiny model under root."""
    demo = root / "models" / "demo"
    make_bundle(tiny_tflite, demo, name="demo", version="demo-1")
    return demo


def environ_without(*prefixes: str) -> dict[str, str]:
    """This process's environment less the variables whose names start with any of `prefixes`."""
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def api_env(root: Path, demo_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a development server whose every file lives under root."""
    env = environ_without("API_", "MUSHROOM_", "STORAGE_EMULATOR")
    env.update(
        {
            "MUSHROOM_STORAGE_URI": str(root / "storage"),
            "API_ENV": "development",
            "API_MODEL_NAME": "mushroom",
            "API_FALLBACK_BUNDLE_DIR": str(demo_dir),
            "API_MODEL_CACHE_DIR": str(root / "cache"),
            "MUSHROOM_DATABASE_URL": f"sqlite:///{root / 'feedback.sqlite3'}",
            "API_FRONTEND_DIR": "",
            "API_RATE_LIMIT_PER_MINUTE": "0",
            "API_ADMIN_TOKEN": "test-admin-token",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def start_api(
    root: Path,
    env: dict[str, str],
    *,
    wrapper: list[str] | None = None,
    open_files: int | None = None,
    ready_timeout_s: float = 60.0,
    workers: int | None = 1,
) -> ApiProcess:
    """Start the API and wait until /healthz answers.

    Args:
        root: a folder for the log.
        env: the server's environment (see api_env).
        wrapper: a command that execs its arguments (e.g. to mount a full disk first).
        open_files: the server's open-file limit (soft and hard), as a container would set it.
        ready_timeout_s: how long the server may take to answer /healthz.
        workers: `--workers` (None: the server's default, one per core).

    Returns:
        The running server.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mushroom_api.cli",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    if workers is not None:
        # One process: memory read from /proc and per-process limits (rate limit, budgets)
        # are then the server's whole state.
        command += ["--workers", str(workers)]
    if wrapper is not None:
        command = [*wrapper, *command]

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    log_path = root / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files
        )
    server = ApiProcess(process, f"http://127.0.0.1:{port}", port, log_path, root, env)
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}:\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the API did not answer in {ready_timeout_s} s:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@contextmanager
def demo_server(
    root: Path,
    tiny_tflite: Path,
    warm: tuple[str, bytes, str] | None = None,
    **overrides: str,
) -> Iterator[ApiProcess]:
    """A development server with the demo model, all under root, `overrides` in its environment;
    stopped on leaving.

    With `warm` (a file name, its bytes and its type), one /predict of it is sent first: the
    first request pays for imports and allocator arenas.
    """
    api = start_api(root, api_env(root, make_demo(root, tiny_tflite), **overrides))
    try:
        if warm is not None:
            with api.client() as client:
                client.post("/predict", files={"file": warm})
        yield api
    finally:
        api.stop()


def predict_and_share(client: httpx.Client, data: bytes) -> str:
    """POST /predict, then a feedback that agrees to share the photo; the feedback id."""
    answer = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    feedback = client.post(
        "/feedback",
        json={"request_id": answer.json()["request_id"], "correct": True, "share_photo": True},
    )
    assert feedback.status_code == 201, feedback.text
    feedback_id: str = feedback.json()["id"]
    return feedback_id


def _status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory since the last reset_peak_rss, in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> None:
    """Reset the process's peak resident memory to its current one (Linux clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_growth_mb(pid: int, action: Callable[[], object]) -> float:
    """How far the process's resident memory rose above its start while `action` ran."""
    time.sleep(0.2)
    reset_peak_rss(pid)
    before = rss_mb(pid)
    action()
    return peak_rss_mb(pid) - before


def open_fds_under(pid: int, folder: Path) -> list[str]:
    """The process's open files under folder (also unlinked ones)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def raw_png(width: int, height: int, bit_depth: int, channels: int, value: int = 0x9C) -> bytes:
    """A valid PNG of one colour, streamed through zlib without holding the raw pixels.

    Args:
        width: pixels per row.
        height: rows.
        bit_depth: 8 or 16.
        channels: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
        value: every sample's value (for 16 bits, both bytes).

    Returns:
        The PNG bytes (tens of KB even for tens of megapixels).
    """
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    row = b"\x00" + bytes([value]) * (width * channels * bit_depth // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 200) for _ in range(height // 200)]
    parts.append(compressor.compress(row * (height % 200)))
    parts.append(compressor.flush())

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def jpeg_with_gps(size: tuple[int, int] = (160, 120), camera: str = "FaultCam X100") -> bytes:
    """A green JPEG whose EXIF holds a GPS position, a camera make and model, and a time."""
    exif = Image.Exif()
    exif[0x010F] = "FaultCam"  # Make
    exif[0x0110] = camera  # Model
    exif[0x0132] = "2026:09:14 07:30:00"  # DateTime
    exif[0x8825] = {  # GPSInfo IFD
        1: "N",
        2: (52.0, 13.0, 27.5),
        3: "E",
        4: (13.0, 24.0, 51.0),
    }
    buffer = io.BytesIO()
    Image.new("RGB", size, (0, 255, 0)).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def multipart_head(boundary: str, filename: str = "photo.jpg") -> bytes:
    """The opening of a multipart/form-data body with one `file` part."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


def start_held_upload(port: int, body_size: int, sent: int) -> socket.socket:
    """Open a POST /predict that declares `body_size` bytes and sends only `sent` of them."""
    boundary = "faultsboundary"
    head = multipart_head(boundary)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {body_size}\r\n\r\n"
        ).encode()
        + head
        + bytes(max(0, sent - len(head)))
    )
    return sock


def read_response_head(sock: socket.socket, timeout_s: float = 10.0) -> str:
    """The status line and headers the server sends on a raw socket ('' if it closed)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data.decode("latin-1")
