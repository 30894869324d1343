"""`mushroom-api`: worker count, a busy port, several workers behind one port (real processes)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mushroom_api_testkit import GREEN, PhotoFactory, free_port

from mushroom_api.cli import available_cores, cgroup_cpu_limit, port_problem


def test_cgroup_v2_quota_in_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == pytest.approx(1.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_in_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == pytest.approx(0.5)
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_available_cores_is_at_most_the_affinity() -> None:
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def test_a_busy_port_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problem = port_problem("127.0.0.1", port)
    assert problem is not None
    assert f"Port {port} on 127.0.0.1 is already in use" in problem
    assert f"PORT={port + 1}" in problem
    assert port_problem("127.0.0.1", free_port()) is None
    assert "not an address of this machine" in (port_problem("192.0.2.1", free_port()) or "")


def _api_env(tmp_path: Path, demo_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "PROMETHEUS_"))}
    env.update(
        {
            "MUSHROOM_STORAGE_URI": str(tmp_path / "storage"),
            "API_FALLBACK_BUNDLE_DIR": str(demo_dir),
            "API_MODEL_CACHE_DIR": str(tmp_path / "cache"),
            "MUSHROOM_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
            "API_FRONTEND_DIR": "",
            "API_RATE_LIMIT_PER_MINUTE": "0",
        }
    )
    return env


def _command() -> list[str]:
    script = Path(sys.executable).parent / "mushroom-api"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mushroom_api.cli"]


def test_the_command_refuses_a_busy_port_with_a_sentence(tmp_path: Path, demo_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*_command(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=_api_env(tmp_path, demo_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_two_workers_share_the_port_and_their_metrics(
    tmp_path: Path, demo_dir: Path, photo: PhotoFactory
) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [*_command(), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            # The shared metrics folder goes under TMPDIR: here, so the test sees it removed.
            env={**_api_env(tmp_path, demo_dir), "TMPDIR": str(tmp_path)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "mushroom-api --workers 2 did not become ready"
            # Ready once both workers have loaded the model, whichever answers /readyz.
            if log.read_text().count("Application startup complete") == 2:
                break
            time.sleep(0.1)
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        data = photo(GREEN)
        answered = 0
        for _ in range(12):
            # A new connection each time, so the kernel may hand it to either worker.
            response = httpx.post(
                f"{base}/predict", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=20
            )
            assert response.status_code == 200, response.text
            answered += 1
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        counted = sum(
            float(m.group(1))
            for m in re.finditer(
                r"^mushroom_api_verdicts_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.MULTILINE
            )
        )
        assert counted == answered
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))) == 2
        # A quiet start: the migrations of the new database print no Alembic lines.
        assert "alembic" not in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert not list(tmp_path.glob("mushroom-api-metrics-*"))
