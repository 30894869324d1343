"""The uvicorn server the API runs in: connection limits, timeouts and trusted proxies.

Hostile clients attack the connection layer before any route runs: huge headers, sockets that
open and never speak, a trickle of header bytes, forwarded-for headers that invent client IPs.
Everything that defends against them is configured here, once, and tested against a real server.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from mushroom_api.config import Settings

logger = logging.getLogger(__name__)

# File descriptors kept free for what is not a client socket: model files, logs, storage, SQLite.
RESERVED_FILE_DESCRIPTORS = 64


@dataclass
class ConnectionLimits:
    """What one connection may cost, shared by every connection of one server."""

    max_connections: int
    per_address: int
    header_timeout_s: float
    body_timeout_s: float
    min_body_bytes_per_s: int
    max_header_bytes: int
    trusted: tuple[IPv4Network | IPv6Network, ...] = ()
    # address -> open connections (filled by the protocol)
    open_by_address: dict[str, int] = field(default_factory=dict)

    def is_trusted(self, host: str) -> bool:
        """Whether the address is a configured proxy (many clients behind one address)."""
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


def _networks(entries: list[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            logger.warning("forwarded_allow_ips entry %r is not an address or network", entry)
    return tuple(networks)


_CHECK_EVERY_S = 0.5
_TOO_LARGE_TEXT = b"The request's headers are too large.\r\n"
_TOO_LARGE_HEAD = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_TEXT), _TOO_LARGE_TEXT)
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with connection budgets a single client cannot exhaust.

    - Header deadline: the request line and headers must be complete within `header_timeout_s`
      of the connection opening or of the previous response ending (idle keep-alive included),
      or the socket is closed. uvicorn alone only times out connections between requests.
    - Body deadline: a request body must arrive within `body_timeout_s`, and after the first
      `header_timeout_s` at `min_body_bytes_per_s` or faster; a socket that declares a body and
      sends nothing, or trickles it, is closed and gives its upload budget back.
    - Connections: at most `per_address` from one client address (configured proxies
      excepted) and `max_connections` in all. A new connection over either cap closes the
      longest-idle connection (no request in flight) of that address, or of anyone, instead of
      being refused, so an idle crowd never locks out a probe; only when nothing is idle is the
      new one closed. Requests are never refused for the number of connections: `/healthz`
      is answered whatever the upload slots hold.
    - A header block that overflows the limit across several reads is answered 431 (the ASGI
      `RequestHeadMiddleware` counts the total of a block that arrives in one read).
    """

    _header_deadline: asyncio.TimerHandle | None = None
    _body_check: asyncio.TimerHandle | None = None
    _address: str | None = None
    _idle_since: float = 0.0
    _body_cycle: object | None = None
    _body_started = 0.0
    _body_bytes = 0

    @property
    def limits(self) -> ConnectionLimits:
        """The server's limits (on its config, so worker processes get their own copy)."""
        limits: ConnectionLimits = self.config.connection_limits  # type: ignore[attr-defined]
        return limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        host = self.client[0] if self.client else None
        limits = self.limits
        if host is not None and not limits.is_trusted(host):
            self._address = host
            count = limits.open_by_address.get(host, 0) + 1
            limits.open_by_address[host] = count
            if count > limits.per_address and not self._evict_idle(host):
                transport.close()
                return
        if len(self.connections) > limits.max_connections and not self._evict_idle(None):
            transport.close()
            return
        self._arm_header_deadline()

    def _evict_idle(self, address: str | None) -> bool:
        """Close the longest-idle other connection (of `address`, or of anyone)."""
        oldest: GuardedH11Protocol | None = None
        for other in self.connections:
            if (
                other is self
                or not isinstance(other, GuardedH11Protocol)
                or (address is not None and other._address != address)
                or not other._is_idle()
                or other.transport.is_closing()
            ):
                continue
            if oldest is None or other._idle_since < oldest._idle_since:
                oldest = other
        if oldest is None:
            return False
        oldest.transport.close()
        return True

    def _is_idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        self._disarm_header_deadline()
        if not cycle.more_body:
            self._disarm_body_check()
            return
        if self._body_cycle is not cycle:
            self._body_cycle = cycle
            self._body_started = self.loop.time()
            self._body_bytes = 0
            self._arm_body_check()
        else:
            self._body_bytes += len(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm_body_check()
        self._idle_since = self.loop.time()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        self._disarm_body_check()
        if self._address is not None:
            left = self.limits.open_by_address.get(self._address, 1) - 1
            if left > 0:
                self.limits.open_by_address[self._address] = left
            else:
                self.limits.open_by_address.pop(self._address, None)
            self._address = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        buffered = len(self.conn.trailing_data[0])
        if buffered > self.limits.max_header_bytes:
            # h11 refuses a header block that grew past its limit over several reads.
            self.transport.write(_TOO_LARGE_HEAD)
            self.transport.close()
            return
        super().send_400_response(msg)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout_s, self._header_deadline_passed
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

    def _arm_body_check(self) -> None:
        if self._body_check is not None:
            self._body_check.cancel()
        self._body_check = self.loop.call_later(_CHECK_EVERY_S, self._check_body)

    def _disarm_body_check(self) -> None:
        if self._body_check is not None:
            self._body_check.cancel()
            self._body_check = None
        self._body_cycle = None

    def _check_body(self) -> None:
        self._body_check = None
        cycle = self.cycle
        if (
            cycle is None
            or cycle is not self._body_cycle
            or cycle.response_complete
            or not cycle.more_body
            or self.transport.is_closing()
        ):
            return
        if self.flow.read_paused:
            # The app is not reading yet: not the client's delay.
            self._body_started += _CHECK_EVERY_S
        limits = self.limits
        elapsed = self.loop.time() - self._body_started
        too_slow = (
            elapsed > limits.header_timeout_s
            and self._body_bytes < limits.min_body_bytes_per_s * elapsed
        )
        if elapsed > limits.body_timeout_s or too_slow:
            logger.info(
                "closing a connection whose body came too slowly (%d bytes in %.1f s)",
                self._body_bytes,
                elapsed,
            )
            self.transport.close()
            return
        self._body_check = self.loop.call_later(_CHECK_EVERY_S, self._check_body)


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
    limits = ConnectionLimits(
        max_connections=limit,
        per_address=settings.max_connections_per_address,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        min_body_bytes_per_s=settings.min_body_bytes_per_s,
        max_header_bytes=settings.max_header_bytes,
        trusted=_networks(trusted),
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # h11 enforces a header size limit; httptools (uvicorn's default when installed) has none.
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.header_timeout_s,
        # Connections are capped by the protocol (idle ones make room); uvicorn's own limit
        # would answer every request 503, /healthz included, while idle sockets are open.
        limit_concurrency=None,
        # Queued handshakes hold no file descriptor; a full queue drops SYNs (a 1 s retry for
        # every client) while a crowd connects, and accepted connections beyond the limit
        # make room by closing idle ones.
        backlog=2048,
        # Only a configured proxy may say who the client is; uvicorn trusts 127.0.0.1 by default.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
        server_header=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        **extra,
    )
    # Read by GuardedH11Protocol; pickled with the config into every worker process.
    config.connection_limits = limits  # type: ignore[attr-defined]
    return config
