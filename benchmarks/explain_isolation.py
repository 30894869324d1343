"""Does /explain slow /predict down? p99 of /predict alone, and with 20% /explain traffic.

Starts the real API (`python -m mushroom_api.cli`) twice on the demo bundle: with /explain on the
interpreters that answer /predict (`API_EXPLAIN_POOL_SIZE=0`, the old behaviour) and with its own
pool (`API_EXPLAIN_POOL_SIZE=1`, the default). Each server gets the same closed-loop load: a few
clients in a loop, first /predict only, then 1 request in 5 an /explain. The goal (issue 15,
item 8) is /predict p99 with explanations within 1.5x of its solo value.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from _common import (
    describe_machine,
    format_table,
    free_port,
    machine_info,
    noise_jpeg,
    summarize_latencies,
    write_report,
)

logger = logging.getLogger("benchmarks.explain_isolation")
app = typer.Typer(add_completion=False, help=__doc__)
REPO = Path(__file__).resolve().parent.parent
DEMO_BUNDLE_DIR = REPO / "models" / "demo"


def _start(bundle_dir: Path, root: Path, explain_pool: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "MUSHROOM_STORAGE_URI": str(root / "storage"),
        "API_FALLBACK_BUNDLE_DIR": str(bundle_dir),
        "API_MODEL_CACHE_DIR": str(root / "cache"),
        "API_FEEDBACK_DB_PATH": str(root / f"feedback-{port}.sqlite3"),
        "API_FRONTEND_DIR": "",
        "API_RATE_LIMIT_PER_MINUTE": "0",
        "API_EXPLAIN_POOL_SIZE": str(explain_pool),
        "API_EXPLAIN_QUEUE": "64",
    }
    command = [
        sys.executable,
        "-m",
        "mushroom_api.cli",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the API did not become ready")


def _load(
    base: str, photo: bytes, clients: int, seconds: float, explain_share: float
) -> dict[str, list[float]]:
    """Closed-loop load; latencies in seconds by route."""
    results: dict[str, list[float]] = {"predict": [], "explain": []}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        chooser = random.Random(seed)
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.monotonic() < stop:
                route = "explain" if chooser.random() < explain_share else "predict"
                started = time.perf_counter()
                answer = http.post(f"/{route}", files={"file": ("p.jpg", photo, "image/jpeg")})
                elapsed = time.perf_counter() - started
                if answer.status_code == 200:
                    with lock:
                        results[route].append(elapsed)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="bundle the servers serve")] = DEMO_BUNDLE_DIR,
    clients: Annotated[int, typer.Option(help="concurrent clients in a loop")] = 4,
    seconds: Annotated[float, typer.Option(help="length of each load phase")] = 20.0,
    explain_share: Annotated[float, typer.Option(help="share of requests that explain")] = 0.2,
) -> None:
    """Measure /predict p99 alone and with /explain traffic, shared vs own explain pool."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = machine_info()
    logger.info("%s", describe_machine(info))
    photo = noise_jpeg(7, 1024, 768)
    rows: list[list[Any]] = []
    payload: dict[str, Any] = {"clients": clients, "seconds": seconds, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for label, pool in (("shared (before)", 0), ("own pool (after)", 1)):
            process, base = _start(bundle_dir, Path(tmp), pool)
            try:
                _load(base, photo, clients, 3.0, explain_share)  # warm-up
                solo = _load(base, photo, clients, seconds, 0.0)
                mixed = _load(base, photo, clients, seconds, explain_share)
            finally:
                process.terminate()
                process.wait(timeout=30)
            solo_p = summarize_latencies(solo["predict"])
            mixed_p = summarize_latencies(mixed["predict"])
            ratio = mixed_p.p99_ms / solo_p.p99_ms
            rows.append(
                [
                    label,
                    solo_p.count,
                    solo_p.p50_ms,
                    solo_p.p99_ms,
                    mixed_p.count,
                    len(mixed["explain"]),
                    mixed_p.p50_ms,
                    mixed_p.p99_ms,
                    ratio,
                ]
            )
            payload["runs"].append(
                {
                    "explain": label,
                    "solo_predict": solo_p,
                    "mixed_predict": mixed_p,
                    "mixed_explain": summarize_latencies(mixed["explain"])
                    if mixed["explain"]
                    else None,
                    "p99_ratio": ratio,
                }
            )
    headers = [
        "explain runs on",
        "solo n",
        "solo p50",
        "solo p99",
        "mixed n",
        "explains",
        "mixed p50",
        "mixed p99",
        "p99 x solo",
    ]
    logger.info("%s", format_table(headers, rows))
    path = write_report("explain_isolation", {"machine": info, **payload})
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
