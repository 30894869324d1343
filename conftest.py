"""Fixtures shared by every package's tests: a real GCS emulator and a real PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--bundle`: the model bundle folder the model tests (model-training/tests/model) check."""
    parser.addoption(
        "--bundle",
        default=os.environ.get("MUSHROOM_TEST_BUNDLE") or None,
        help="model bundle folder for model-training/tests/model (default: MUSHROOM_TEST_BUNDLE, "
        "else the repository's models/demo)",
    )


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
        "MUSHROOM_STORAGE_RETRY_DEADLINE_S", os.environ.get("TEST_GCS_DEADLINE", "8")
    )
    try:
        yield emulator, f"gs://{bucket}/prefix"
    finally:
        if emulator.running:
            emulator.stop()


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_MISSING = (
    "PostgreSQL server binaries are not installed (no initdb under /usr/lib/postgresql/*/bin): "
    "run `make setup-postgres` (apt-get install postgresql)"
)


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or None."""
    found = sorted(
        (Path(p) for p in glob.glob(POSTGRES_BIN_GLOB) if (Path(p) / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the `postgres` user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only."""

    bin_dir: Path
    data_dir: Path
    port: int

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._ctl("-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, database: str = "postgres") -> str:
        """A plain `postgresql://` URL (the store maps it to psycopg 3)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb into a fresh folder owned by `postgres`, then start it on a free port."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(POSTGRES_MISSING)
    data_dir = Path(tempfile.mkdtemp(prefix="mushroom-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    server = PostgresServer(bin_dir=bin_dir, data_dir=data_dir, port=free_port())
    server.start()
    return server


def _own_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster, removed when the generator is closed."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the test session (each test gets its own database)."""
    yield from _own_postgres()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    if not postgres_server.running:
        postgres_server.start()
    return postgres_server.create_database()


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, which the test may stop and start."""
    yield from _own_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL: SQLite in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'mushroom.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
