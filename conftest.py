"""Fixtures shared by every package's tests: a real GCS emulator on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GCSEmulator:
    """A running gcp-storage-emulator subprocess."""

    host: str
    process: subprocess.Popen[bytes]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"GCS emulator did not open port {port} in {timeout_s} s")


def start_gcs_emulator(bucket: str) -> GCSEmulator:
    """Start the emulator as a real server process with one bucket."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            bucket,
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port)
    return GCSEmulator(host=f"http://127.0.0.1:{port}", process=process)


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GCSEmulator, str]]:
    """A fresh emulator with a fresh bucket; yields (emulator, gs:// URI) and sets the env."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    emulator = start_gcs_emulator(bucket)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv(
        "MUSHROOM_STORAGE_RETRY_DEADLINE_S", os.environ.get("TEST_GCS_DEADLINE", "3")
    )
    try:
        yield emulator, f"gs://{bucket}/prefix"
    finally:
        if emulator.running:
            emulator.stop()
