"""What the prediction log costs /predict: p50 with logging off, to SQLite and to PostgreSQL.

Three API processes (the demo bundle, the frontend-sized upload) run side by side and take the
same photo in turn, request after request, so machine noise hits all three alike:
- `off`: API_LOG_PREDICTIONS=false (no database write at all);
- `sqlite`: the default embedded SQLite file under local storage;
- `postgresql`: a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's binaries, as the tests).
It also times the write itself (`PredictionStore.add_predictions`, one row), which the API does
on its writer thread, off the request path.

Usage: uv run python benchmarks/store_cost.py [--requests 200] [--warmup 20]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the root conftest's PostgreSQL

import _common
from _common import DEMO_BUNDLE_DIR, free_port, write_report
from api_load import Server, api_command, api_env, start_server, stop_server_process

from conftest import postgres_bin_dir, start_postgres
from mushroom_common.store import PredictionStore

logger = logging.getLogger("store_cost")
app = typer.Typer(add_completion=False, help=__doc__)


def time_direct_writes(url: str, count: int) -> dict[str, float]:
    """p50/p95 of one-row writes through the store (what the writer thread pays per batch)."""
    store = PredictionStore(url)
    store.upgrade()
    seconds = []
    for n in range(count):
        started = time.perf_counter()
        store.add_predictions([_common.bench_record(n)])
        seconds.append(time.perf_counter() - started)
    store.close()
    summary = _common.summarize_latencies(seconds)
    return {"p50_ms": summary.p50_ms, "p95_ms": summary.p95_ms}


def written(server: Server) -> float:
    """The server's own count of logged predictions (from /metrics)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('mushroom_api_prediction_log_total{outcome="written"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@app.command()
def main(
    requests: Annotated[int, typer.Option(help="timed requests per configuration", min=10)] = 200,
    warmup: Annotated[int, typer.Option(help="untimed requests per configuration", min=0)] = 20,
    writes: Annotated[int, typer.Option(help="direct one-row writes per database", min=10)] = 300,
) -> None:
    """Measure and print the store's cost on /predict."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    photo = _common.standard_photos()["upload-1024px"]
    work = Path(tempfile.mkdtemp(prefix="store-cost-"))
    postgres = start_postgres() if postgres_bin_dir() is not None else None
    if postgres is None:
        logger.warning("no PostgreSQL binaries: measuring off and sqlite only")
    configs: dict[str, dict[str, str]] = {
        "off": {"API_LOG_PREDICTIONS": "false"},
        "sqlite": {"MUSHROOM_DATABASE_URL": f"sqlite:///{work / 'sqlite' / 'mushroom.sqlite3'}"},
    }
    if postgres is not None:
        configs["postgresql"] = {"MUSHROOM_DATABASE_URL": postgres.create_database()}
    servers: dict[str, Server] = {}
    try:
        for name, extra in configs.items():
            port = free_port()
            env = api_env(DEMO_BUNDLE_DIR, work / name, {"API_FRONTEND_DIR": "", **extra})
            servers[name] = start_server(
                name, api_command(port), port, env, work / f"{name}.log", timeout_s=300
            )
        latencies: dict[str, list[float]] = {name: [] for name in servers}
        files = {"file": ("photo.jpg", photo.data, "image/jpeg")}
        with httpx.Client(timeout=60) as client:
            for n in range(warmup + requests):
                for name, server in servers.items():
                    started = time.perf_counter()
                    answer = client.post(f"{server.base_url}/predict", files=files)
                    elapsed = time.perf_counter() - started
                    answer.raise_for_status()
                    if n >= warmup:
                        latencies[name].append(elapsed)
        time.sleep(1.0)  # let the writers finish, then check they logged every answer
        logged = {name: written(server) for name, server in servers.items()}
    finally:
        for server in servers.values():
            stop_server_process(server.process)
    direct = {"sqlite": time_direct_writes(f"sqlite:///{work / 'direct.sqlite3'}", writes)}
    if postgres is not None:
        direct["postgresql"] = time_direct_writes(postgres.create_database(), writes)
        postgres.remove()
    summaries = {name: _common.summarize_latencies(values) for name, values in latencies.items()}
    base = summaries["off"].p50_ms
    rows: list[list[Any]] = []
    for name, summary in summaries.items():
        rows.append(
            [
                name,
                summary.count,
                summary.p50_ms,
                summary.p95_ms,
                summary.p50_ms - base,
                int(logged[name]),
                direct.get(name, {}).get("p50_ms", "-"),
            ]
        )
    headers = [
        "logging",
        "requests",
        "p50 ms",
        "p95 ms",
        "p50 - off ms",
        "rows logged",
        "one write p50 ms (writer thread)",
    ]
    logger.info("%s", _common.describe_machine(_common.machine_info()))
    typer.echo(_common.format_table(headers, rows))
    path = write_report(
        "store_cost",
        {
            "machine": _common.machine_info(),
            "photo": photo.name,
            "requests": requests,
            "latency": summaries,
            "rows_logged": logged,
            "direct_write": direct,
        },
    )
    typer.echo(f"report: {path}")


if __name__ == "__main__":
    app()
