"""The uvicorn server the API runs in: connection limits, timeouts and trusted proxies.

Hostile clients attack the connection layer before any route runs: huge headers, sockets that
open and never speak, a trickle of header bytes, forwarded-for headers that invent client IPs.
Everything that defends against them is configured here, once, and tested against a real server.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from mushroom_api.config import Settings

logger = logging.getLogger(__name__)

# File descriptors kept free for what is not a client socket: model files, logs, storage, SQLite.
RESERVED_FILE_DESCRIPTORS = 64


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline.

    uvicorn only times out connections *between* requests; one that connects and sends nothing,
    or sends a header byte every few seconds, would hold its socket forever. Here the request
    line and headers must be complete within `timeout_keep_alive` seconds of the connection
    opening (or of the previous response ending), or the socket is closed.
    """

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(
            self.timeout_keep_alive, self._header_deadline_passed
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if not self.transport.is_closing():
            self.transport.close()


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return soft


def connection_limit(settings: Settings, open_file_limit: int) -> int:
    """Concurrent connections: the setting, kept below the open-file limit with a margin."""
    return max(1, min(settings.max_connections, open_file_limit - RESERVED_FILE_DESCRIPTORS))


def server_config(
    app: FastAPI | str,
    settings: Settings,
    host: str,
    port: int,
    log_level: str,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    **extra: Any,
) -> uvicorn.Config:
    """The uvicorn configuration every deployment runs with.

    `app` is the app, or an import string with `factory=True` and `workers=N` in `extra` for
    several worker processes (each builds its own app).
    """
    open_files = raise_open_file_limit()
    limit = connection_limit(settings, open_files)
    trusted = settings.trusted_proxies
    logger.info(
        "open-file limit %d, at most %d connections, forwarded headers trusted from %s",
        open_files,
        limit,
        ", ".join(trusted) if trusted else "nobody",
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # h11 enforces a header size limit; httptools (uvicorn's default when installed) has none.
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.header_timeout_s,
        limit_concurrency=limit,
        backlog=min(2048, limit),
        # Only a configured proxy may say who the client is; uvicorn trusts 127.0.0.1 by default.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
        server_header=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        **extra,
    )
