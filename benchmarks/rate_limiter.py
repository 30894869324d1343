"""How long does the rate limiter take to admit a request, with few and with many clients?

Compares, in one run, the limiter before issue 15 (a deque of timestamps per client, and a scan
of the whole table once it holds 10,000 clients) with the bounded token-bucket LRU that replaced
it (`mushroom_api.middleware.RateLimitMiddleware`), for a growing number of distinct clients.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Annotated, Any

import typer
from _common import describe_machine, format_table, machine_info, write_report

from mushroom_api.middleware import RateLimitMiddleware

logger = logging.getLogger("benchmarks.rate_limiter")
app = typer.Typer(add_completion=False, help=__doc__)


class SlidingLogLimiter:
    """The limiter as it was: per-client deques, a full-table sweep past 10,000 clients."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _admit(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return hits[0] + 60.0 - now
            hits.append(now)
            if len(self._hits) > 10_000:
                for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - 60.0]:
                    del self._hits[key]
            return 0.0


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


def _us_per_admit(limiter: Any, clients: int, requests: int) -> float:
    names = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(clients)]
    for name in names:
        limiter._admit(name)
    started = time.perf_counter()
    for number in range(requests):
        limiter._admit(names[number % clients])
    return (time.perf_counter() - started) / requests * 1e6


@app.command()
def main(
    requests: Annotated[int, typer.Option(help="admissions timed per row")] = 2_000,
) -> None:
    """Time one admission for 1k to 100k distinct clients (the old limiter up to 15k only:
    past 10k clients it scans the whole table on every request, so filling it is quadratic)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = machine_info()
    logger.info("%s", describe_machine(info))
    rows = []
    for clients in (1_000, 10_000, 15_000, 100_000):
        before = (
            _us_per_admit(SlidingLogLimiter(60), clients, requests) if clients <= 15_000 else None
        )
        after = _us_per_admit(
            RateLimitMiddleware(_nothing, 60, lambda _p: True, max_clients=100_000),
            clients,
            requests,
        )
        rows.append([clients, before, after])
    logger.info("%s", format_table(["clients", "before us/admit", "after us/admit"], rows))
    path = write_report("rate_limiter", {"machine": info, "rows": rows})
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
