"""ASGI middleware: the upload limit (while streaming) and the per-client rate limit."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart framing (boundaries, part headers) on top of the photo's own bytes.
MULTIPART_SLACK_BYTES = 64 * 1024


async def send_error(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Send a JSON error `{"detail": ...}` straight through ASGI."""
    body = json.dumps({"detail": detail}).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
    ]
    raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLargeError(Exception):
    """Raised from `receive` once the body passes the limit."""


class UploadLimitMiddleware:
    """Refuse request bodies over the limit with 413, without reading them whole first.

    A declared Content-Length over the limit is refused before any byte is read; otherwise the
    body is counted as it streams in and the request is cut off at the first byte too many.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.detail = (
            f"The photo is too large: the limit is {max_upload_bytes / (1024 * 1024):.0f} MB."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    continue
                if declared > self.max_body_bytes:
                    await send_error(send, 413, self.detail)
                    return
        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                # The app turned the cut-off body into some other error; the 413 replaces it.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLargeError:
            exceeded = True
        if exceeded and not response_started:
            await send_error(send, 413, self.detail)


class RateLimitMiddleware:
    """At most `per_minute` requests per client IP in any 60 s window on the limited paths."""

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        is_limited: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.per_minute = per_minute
        self.is_limited = is_limited
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _admit(self, client: str) -> float:
        """0 when admitted, else seconds until the client may retry."""
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return hits[0] + 60.0 - now
            hits.append(now)
            if len(self._hits) > 10_000:
                # Forget idle clients so the table stays small.
                for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - 60.0]:
                    del self._hits[key]
            return 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.per_minute <= 0 or not self.is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self._admit(client[0] if client else "unknown")
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_error(
                send,
                429,
                f"Too many requests: please wait {retry} seconds and try again.",
                {"retry-after": str(retry)},
            )
            return
        await self.app(scope, receive, send)


class ApiCorsMiddleware:
    """CORS on the API's addresses only.

    Starlette's CORS middleware adds `Vary: Origin` to every response of a request that carries
    an Origin header, which the app's module script and stylesheet (loaded `crossorigin`) do.
    A service worker's cache then misses them for a request without that header, and the app
    opens blank offline. The app's own files are same-origin and need no CORS headers at all.
    """

    def __init__(
        self,
        app: ASGIApp,
        is_api_path: Callable[[str], bool],
        allow_origins: Sequence[str],
        allow_methods: Sequence[str],
        allow_headers: Sequence[str],
    ) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
        )
        self.is_api_path = is_api_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.cors(scope, receive, send)
