"""`mushroom-api`: serve the API (and the built frontend) with uvicorn, one worker per core."""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.config
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from mushroom_api.config import get_settings
from mushroom_api.server import server_config

logger = logging.getLogger("mushroom_api")
DEFAULT_TLS_DIR = Path.home() / ".cache" / "mushroom-api" / "tls"
app = typer.Typer(add_completion=False, help="Serve the Mushroom ID API.")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (a container's CPU limit), if any.

    Args:
        root: where the cgroup file system is mounted.

    Returns:
        The quota in cores (v2 `cpu.max` or v1 `cpu.cfs_quota_us`), or None when unlimited.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a container's CPU limit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit()
    if limit is not None:
        # A pod limited to 500m gets one worker; to 1.5 cores, two.
        cores = min(cores or 1, math.ceil(limit))
    return max(1, cores or 1)


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, as a sentence, or None when it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return f"The host {host!r} is not an address of this machine; use 127.0.0.1 or 0.0.0.0."
    with socket.socket(family, kind, proto) as probe:
        # The same option uvicorn sets: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is already in use by another program: stop it, or "
                    f"choose another port with --port (make run PORT={port + 1})."
                )
            if exc.errno == errno.EACCES:
                return f"Port {port} needs root; choose a port above 1023 with --port."
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0."
            return f"Cannot listen on {host}:{port}: {exc.strerror}."
    return None


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging plus our own loggers, applied in every worker process."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING"},
            # The start applies migrations quietly; `mushroom-db upgrade` shows Alembic's steps.
            "alembic": {"level": "WARNING"},
        },
    }
    return config


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="server processes sharing the port, each with its own model "
            "(default: the cores this process may use, a container's CPU limit included)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    tls_self_signed: Annotated[
        bool,
        typer.Option(
            help="serve HTTPS with a self-signed certificate (made once, then reused), so a "
            "phone on the same network gets the secure context offline identification needs"
        ),
    ] = False,
    tls_dir: Annotated[
        Path, typer.Option(help="where --tls-self-signed keeps cert.pem and key.pem")
    ] = DEFAULT_TLS_DIR,
) -> None:
    """Serve the API; settings come from API_* variables and MUSHROOM_STORAGE_URI."""
    log_config = logging_config(log_level)
    logging.config.dictConfig(log_config)
    try:
        get_settings()
    except ValidationError as exc:
        # The messages only: pydantic's full text repeats the input, secrets included.
        logger.error("invalid settings: %s", "; ".join(e["msg"] for e in exc.errors()))
        raise typer.Exit(code=2) from exc
    problem = port_problem(host, port)
    if problem is not None:
        logger.error("%s", problem)
        raise typer.Exit(code=2)
    processes = workers or available_cores()
    logger.info("serving on %s:%d with %d worker process(es)", host, port, processes)
    settings = get_settings()
    if processes > 1 and settings.reload_poll_seconds == 0 and settings.admin_enabled:
        logger.warning(
            "POST /admin/reload reaches one of the %d workers: set API_RELOAD_POLL_SECONDS so "
            "every worker follows the champion, or run with --workers 1",
            processes,
        )
    if processes > 1 and settings.rate_limit_per_minute > 0:
        logger.info(
            "each of the %d workers counts its own rate limit (up to %d requests per minute "
            "per client in all)",
            processes,
            processes * settings.rate_limit_per_minute,
        )
    tls = None
    if tls_self_signed:
        # Imported here: cryptography costs 30 ms of every start that does not ask for TLS.
        from mushroom_api.tls import self_signed_certificate

        tls = self_signed_certificate(tls_dir, host)
    if tls is not None:
        logger.info(
            "serving https://%s:%d/ with the certificate %s (trust it once on the phone)",
            host,
            port,
            tls.certfile,
        )
    tls_files = {
        "ssl_certfile": str(tls.certfile) if tls else None,
        "ssl_keyfile": str(tls.keyfile) if tls else None,
    }
    if processes == 1:
        # One process: no supervisor, and the app is built here (the fastest cold start).
        from mushroom_api.main import create_app

        api = create_app()
        config = server_config(
            api, api.state.settings, host, port, log_level, log_config=log_config, **tls_files
        )
        uvicorn.Server(config).run()
        return
    with _shared_metrics_dir():
        config = server_config(
            "mushroom_api.main:create_app",
            settings,
            host,
            port,
            log_level,
            factory=True,
            workers=processes,
            log_config=log_config,
            **tls_files,
        )
        # What uvicorn.run does for workers > 1, with our guarded server configuration: each
        # worker process runs a Server of this config on the shared socket.
        Multiprocess(config, sockets=[config.bind_socket()]).run()


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """One folder where every worker's Prometheus counters add up, so /metrics shows them all.

    prometheus_client's multiprocess mode reads PROMETHEUS_MULTIPROC_DIR when it is imported;
    the workers are started after this and inherit it. A folder set by the operator is kept.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="mushroom-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    app()
