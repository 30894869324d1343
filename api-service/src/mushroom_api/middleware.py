"""ASGI middleware: the upload limit (while streaming) and the per-client rate limit."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
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


class ByteBudget:
    """Bytes that all requests together may hold; taken and given back by the upload middleware.

    Uploads are kept in memory (never spooled to a size-limited /tmp), so their sum must be
    bounded: a request that does not fit is answered 503 with Retry-After instead of waiting.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._lock = threading.Lock()

    def try_take(self, amount: int) -> bool:
        """Take `amount` bytes when they fit; return whether they were taken."""
        with self._lock:
            if self.in_use + amount > self.total:
                return False
            self.in_use += amount
            return True

    def give_back(self, amount: int) -> None:
        """Return bytes taken earlier."""
        with self._lock:
            self.in_use = max(0, self.in_use - amount)


UPLOADS_BUSY_RETRY_AFTER_S = 2
UPLOADS_BUSY_DETAIL = (
    "The server is busy receiving other photos; please try again in a few seconds."
)


class _BodyTooLargeError(Exception):
    """Raised from `receive` once the body passes the limit."""


class _BudgetExhaustedError(Exception):
    """Raised from `receive` once a streamed body no longer fits in the upload budget."""


class UploadLimitMiddleware:
    """Refuse request bodies over the limit with 413, and over the shared budget with 503.

    A declared Content-Length over the limit is refused before any byte is read; otherwise the
    body is counted as it streams in and the request is cut off at the first byte too many.
    Every body's bytes count against `budget` until its response is sent.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        budget: ByteBudget,
        observation_paths: frozenset[str] = frozenset(),
        max_observation_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.budget = budget
        self.detail = (
            f"The photo is too large: the limit is {max_upload_bytes / (1024 * 1024):.0f} MB."
        )
        # Routes that take several photos (POST /predict, issue 24): their body may hold the
        # whole observation; each photo still meets the per-photo limit in the route.
        self.observation_paths = observation_paths
        self.max_observation_body_bytes = max(
            max_body_bytes, (max_observation_bytes or 0) + max_body_bytes - max_upload_bytes
        )
        self.observation_detail = (
            "The photos are too large together: the limit is "
            f"{(max_observation_bytes or max_upload_bytes) / (1024 * 1024):.0f} MB per request."
        )

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if scope.get("path") in self.observation_paths:
            return self.max_observation_body_bytes, self.observation_detail
        return self.max_body_bytes, self.detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit, detail = self._limit(scope)
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    continue
                if declared > limit:
                    await send_error(send, 413, detail)
                    return
        held = 0
        if declared is not None:
            if not self.budget.try_take(declared):
                await self._busy(send)
                return
            held = declared
        try:
            await self._forward(
                scope, receive, send, reserved=declared is not None, limit=limit, detail=detail
            )
        finally:
            self.budget.give_back(held)

    async def _busy(self, send: Send) -> None:
        await send_error(
            send, 503, UPLOADS_BUSY_DETAIL, {"retry-after": str(UPLOADS_BUSY_RETRY_AFTER_S)}
        )

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        reserved: bool,
        limit: int,
        detail: str,
    ) -> None:
        received = 0
        taken = 0
        refusal: type[Exception] | None = None
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, refusal, taken
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                if received > limit:
                    refusal = _BodyTooLargeError
                    raise _BodyTooLargeError
                if not reserved:
                    # A streamed body (no Content-Length) takes its budget as it arrives.
                    if not self.budget.try_take(size):
                        refusal = _BudgetExhaustedError
                        raise _BudgetExhaustedError
                    taken += size
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refusal is not None:
                # The app turned the cut-off body into some other error; ours replaces it.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except (_BodyTooLargeError, _BudgetExhaustedError):
            pass
        finally:
            self.budget.give_back(taken)
        if refusal is not None and not response_started:
            if refusal is _BodyTooLargeError:
                await send_error(send, 413, detail)
            else:
                await self._busy(send)


class RateLimitMiddleware:
    """At most `per_minute` requests per client IP a minute on the limited paths.

    A token bucket per client (capacity `per_minute`, refilled continuously): admitting a request
    is O(1) whatever the number of clients, and the table keeps only the `max_clients` most
    recently seen (an LRU), so a flood of invented addresses cannot grow it. A forgotten client
    comes back with a full bucket, which only ever errs towards admitting.
    """

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        is_limited: Callable[[str], bool],
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.per_minute = per_minute
        self.is_limited = is_limited
        self.max_clients = max_clients
        self.clock = clock
        self._rate = per_minute / 60.0
        # client -> (tokens, time of the last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def clients(self) -> int:
        """How many clients the limiter remembers now."""
        return len(self._buckets)

    def _admit(self, client: str) -> float:
        """0 when admitted, else seconds until the client may retry."""
        now = self.clock()
        capacity = float(self.per_minute)
        with self._lock:
            tokens, updated = self._buckets.pop(client, (capacity, now))
            tokens = min(capacity, tokens + (now - updated) * self._rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.per_minute <= 0 or not self.is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        # The socket's address: uvicorn replaces it from X-Forwarded-For only for trusted proxies.
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


# The web app runs its model in the browser: WebAssembly compiled from its own files
# ('wasm-unsafe-eval'), a worker that may be started from a blob: URL, and fetches to this origin
# only. Nothing may frame the app (clickjacking), nothing is sniffed into a script.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# FastAPI's /docs and /redoc load Swagger UI and ReDoc from jsDelivr with an inline bootstrap.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "font-src 'self' https://fonts.gstatic.com",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Add the browser security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._policy = CONTENT_SECURITY_POLICY.encode("ascii")
        self._docs_policy = DOCS_CONTENT_SECURITY_POLICY.encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self._docs_policy if scope.get("path") in DOCS_PATHS else self._policy

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"server"
                ]
                headers += [*SECURITY_HEADERS, (b"content-security-policy", policy)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class SafePathMiddleware:
    """Answer 400 to a path with control characters (`/a%00b`) before anything uses it.

    A NUL in a path makes file-system calls raise and would be written raw into the logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_control_characters(scope.get("path", "")):
            await send_error(
                send, 400, "The address contains characters that are not allowed in a path."
            )
            return
        await self.app(scope, receive, send)


def has_control_characters(text: str) -> bool:
    """Whether text holds an ASCII control character (NUL, newline, DEL, ...)."""
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def printable(text: str, limit: int = 200) -> str:
    """Text made safe for a log line: control characters escaped, long text cut."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


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
