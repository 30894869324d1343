"""Issue 25's connection and observability attacks against a real server, old and new side by side.

For each attack: the status codes and p99 of normal /predict requests made while it runs, the
server's peak RSS and the CPU seconds it spent. `--python` names the interpreter whose installed
`mushroom_api` is measured (e.g. another worktree's .venv/bin/python for the code before a fix).

- held_bodies: 8 sockets declare a 15 MB body (the upload budget is set to exactly 8 of them) and
  send nothing;
- idle_crowd: 600 idle sockets from 20 loopback addresses (connection limit 300);
- method_flood: 300 requests with made-up 2,000-character methods, then 5 scrapes of /metrics
  (page size and scrape time reported);
- species_crowd: 100 sockets from 10 addresses pipelining 20 GET /species each, never reading.

    cd /work/wt/reliability
    uv run python benchmarks/attack_budgets.py --python ../../main/.venv/bin/python \\
        --python .venv/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from _common import free_port, noise_jpeg

logger = logging.getLogger("attack_budgets")
REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _start(python: str, root: Path, **settings: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "MUSHROOM_"))}
    env.update(
        {
            "MUSHROOM_STORAGE_URI": str(root / "storage"),
            "MUSHROOM_DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
            "API_FALLBACK_BUNDLE_DIR": str(REPO / "models" / "demo"),
            "API_MODEL_CACHE_DIR": str(root / "cache"),
            "API_FRONTEND_DIR": "",
            "API_RATE_LIMIT_PER_MINUTE": "0",
            **settings,
        }
    )
    command = [python, "-m", "mushroom_api.cli", "--host", "127.0.0.1", "--port", str(port)]
    log = (root / f"api-{port}.log").open("wb")
    process = subprocess.Popen([*command, "--workers", "1"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, port
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become ready")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _normal_predicts(port: int, count: int) -> tuple[list[int], float]:
    statuses, latencies = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for seed in range(count):
            started = time.perf_counter()
            try:
                files = {"file": ("p.jpg", noise_jpeg(seed, 160, 128), "image/jpeg")}
                statuses.append(client.post("/predict", files=files).status_code)
            except httpx.TransportError:
                statuses.append(0)
            latencies.append(time.perf_counter() - started)
    return statuses, float(np.percentile(latencies, 99))


def _held_bodies(port: int) -> list[socket.socket]:
    held = []
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n\r\n'
    for _ in range(8):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: a\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % (15 * MB) + head
        )
        held.append(sock)
    time.sleep(4)  # past the header deadline: what the fix's minimum body rate acts on
    return held


def _idle_crowd(port: int) -> list[socket.socket]:
    crowd = []
    for n in range(20):
        for _ in range(30):
            sock = socket.socket()
            sock.bind((f"127.0.0.{n + 2}", 0))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            crowd.append(sock)
    time.sleep(0.5)
    return crowd


def _method_flood(port: int) -> list[socket.socket]:
    rng = random.Random(25)
    for _ in range(300):
        method = "".join(rng.choices(string.ascii_uppercase, k=2000))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(f"{method} /x{rng.random()} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            s.recv(1024)
    return []


def _species_crowd(port: int) -> list[socket.socket]:
    crowd = []
    for n in range(10):
        for _ in range(10):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((f"127.0.1.{n + 1}", 0))
            sock.connect(("127.0.0.1", port))
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /species HTTP/1.1\r\nHost: a\r\n\r\n" * 20)
            crowd.append(sock)
    time.sleep(1.0)
    return crowd


ATTACKS: dict[str, tuple[Callable[[int], list[socket.socket]], dict[str, str]]] = {
    "held_bodies": (
        _held_bodies,
        {"API_UPLOAD_BUDGET_BYTES": str(8 * 15 * MB), "API_HEADER_TIMEOUT_S": "2"},
    ),
    "idle_crowd": (_idle_crowd, {"API_MAX_CONNECTIONS": "300"}),
    "method_flood": (_method_flood, {}),
    "species_crowd": (_species_crowd, {}),
}


def measure(python: str, attack: str) -> dict[str, object]:
    """One attack against a fresh server of `python`'s mushroom_api."""
    run, settings = ATTACKS[attack]
    with tempfile.TemporaryDirectory() as folder:
        process, port = _start(python, Path(folder), **settings)
        try:
            cpu_before = _cpu_seconds(process.pid)
            sockets = run(port)
            try:
                statuses, p99 = _normal_predicts(port, 10)
                health = []
                for _ in range(5):
                    try:
                        health.append(httpx.get(f"http://127.0.0.1:{port}/healthz").status_code)
                    except httpx.TransportError:
                        health.append(0)
                result: dict[str, object] = {
                    "predict_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
                    "predict_p99_s": round(p99, 3),
                    "healthz": health,
                }
                if attack == "method_flood":
                    started = time.perf_counter()
                    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).content
                    result["metrics_bytes"] = len(page)
                    result["metrics_scrape_s"] = round(time.perf_counter() - started, 3)
            finally:
                for sock in sockets:
                    sock.close()
            result["server_cpu_s"] = round(_cpu_seconds(process.pid) - cpu_before, 2)
            result["peak_rss_mb"] = round(_peak_rss_mb(process.pid), 1)
            return result
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True, help="interpreter to measure")
    parser.add_argument("--attack", action="append", choices=sorted(ATTACKS), default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = {
        attack: {python: measure(python, attack) for python in args.python}
        for attack in args.attack or sorted(ATTACKS)
    }
    logger.info("%s", json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
