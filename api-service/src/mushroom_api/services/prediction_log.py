"""The prediction log off the critical path: /predict hands records to a bounded queue, and one
writer thread stores them in batches. A slow, full, locked or unreachable database costs
dropped log lines (counted in /metrics, warned about in the log), never a slow or failed answer.

`health()` tells /readyz the truth: the last write failed, a write has been stuck longer than
`stall_after_s` (a held SQLite lock), or the queue is full. When idle, the writer proves the
database still takes writes with a heartbeat row every `probe_interval_s`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence

from mushroom_api.services import metrics
from mushroom_common.store import PredictionRecord, PredictionStore, StoreError

logger = logging.getLogger(__name__)

_MAX_BATCH = 200
# How long the writer waits for more records after the first: one insert per request costs
# 1.2 ms of CPU under the GIL, ten in one insert 0.4 ms each (benchmarks/RESULTS.md).
DEFAULT_LINGER_S = 0.1
_RETRY_DELAYS_S = (0.2, 1.0)
_WARN_EVERY_S = 10.0
_UNHEALTHY_PROBE_S = 1.0


class PredictionLog:
    """A bounded queue of predictions and the thread that writes them to the store."""

    def __init__(
        self,
        store: PredictionStore,
        *,
        max_queue: int = 1000,
        probe_interval_s: float = 10.0,
        stall_after_s: float = 2.0,
        schema_ready: bool = True,
        schema_error: str | None = None,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> None:
        self.store = store
        self._linger_s = linger_s
        self.writer_id = uuid.uuid4().hex
        # None wakes the writer up at close.
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue(max_queue + 1)
        self._max_queue = max_queue
        self._pending: dict[str, PredictionRecord] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._probe_interval_s = probe_interval_s
        self._stall_after_s = stall_after_s
        self._schema_ready = schema_ready
        self._last_error: str | None = None if schema_ready else (schema_error or "no schema")
        self._busy_since: float | None = None
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        metrics.PREDICTION_LOG_QUEUE.set_function(self._queue.qsize)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (for at most `timeout_s`), then stop the writer."""
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._queue.qsize():
            logger.warning("%d predictions were not logged at shutdown", self._queue.qsize())

    # Called from request handlers: never blocks on the database.

    def submit(self, record: PredictionRecord) -> bool:
        """Queue one prediction; False (counted, warned) when the queue is full."""
        with self._lock:
            self._pending[record.request_id] = record
        try:
            if self._queue.qsize() >= self._max_queue:
                raise queue.Full
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self._pending.pop(record.request_id, None)
            metrics.PREDICTION_LOG.labels(outcome="dropped_queue_full").inc()
            self._warn("the prediction log's queue is full: dropping predictions")
            return False
        return True

    def pending(self, request_id: str) -> PredictionRecord | None:
        """A prediction queued or being written, not yet in the store."""
        with self._lock:
            return self._pending.get(request_id)

    def health(self) -> str | None:
        """None when the log is writable, else one sentence (no URLs, no paths) saying why not."""
        busy_since = self._busy_since
        if self.store.file_problem() is not None:
            return "The prediction database file was deleted or replaced under the server"
        if not self._schema_ready:
            return "The prediction database cannot be reached or migrated yet"
        if busy_since is not None and time.monotonic() - busy_since > self._stall_after_s:
            waited = time.monotonic() - busy_since
            return f"The prediction database has not finished a write for {waited:.0f} s"
        if self._last_error is not None:
            return "The prediction database refused the last write"
        if self._queue.qsize() >= self._max_queue:
            return "The prediction log's queue is full"
        return None

    # The writer thread.

    def _run(self) -> None:
        while True:
            wait = self._probe_interval_s if self.health() is None else _UNHEALTHY_PROBE_S
            try:
                first = self._queue.get(timeout=0.05 if self._closing.is_set() else wait)
            except queue.Empty:
                if self._closing.is_set():
                    return
                self._probe()
                continue
            batch = [first] if first is not None else []
            closing = first is None or self._closing.is_set()
            deadline = time.monotonic() + (0.0 if closing else self._linger_s)
            while len(batch) < _MAX_BATCH:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is None:
                    deadline = 0.0  # close(): write what is queued now, without waiting
                else:
                    batch.append(item)
            if batch:
                self._write(batch)

    def _ensure_schema(self) -> bool:
        if self._schema_ready:
            return True
        try:
            self.store.upgrade()
        except StoreError as exc:
            self._fail(f"migrations failed: {exc}")
            return False
        self._schema_ready = True
        logger.info("the prediction database is migrated now")
        return True

    def _probe(self) -> None:
        if not self._ensure_schema():
            return
        self._busy_since = time.monotonic()
        try:
            self.store.heartbeat(self.writer_id)
        except StoreError as exc:
            self._fail(f"write probe failed: {exc}")
        else:
            self._recover()
        finally:
            self._busy_since = None

    def _write(self, batch: Sequence[PredictionRecord]) -> None:
        attempts = 1 if self._closing.is_set() else len(_RETRY_DELAYS_S) + 1
        error: StoreError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(_RETRY_DELAYS_S[attempt - 1])
            if not self._ensure_schema():
                continue
            self._busy_since = time.monotonic()
            try:
                self.store.add_predictions(batch)
            except StoreError as exc:
                error = exc
                self._fail(f"writing {len(batch)} predictions failed: {exc}")
                continue
            finally:
                self._busy_since = None
            metrics.PREDICTION_LOG.labels(outcome="written").inc(len(batch))
            self._recover()
            self._forget(batch)
            return
        metrics.PREDICTION_LOG.labels(outcome="dropped_store_error").inc(len(batch))
        self._warn(f"dropped {len(batch)} predictions the database would not take: {error}")
        self._forget(batch)

    def _forget(self, batch: Sequence[PredictionRecord]) -> None:
        with self._lock:
            for record in batch:
                self._pending.pop(record.request_id, None)

    def _fail(self, reason: str) -> None:
        self._last_error = reason
        self._warn(reason)

    def _recover(self) -> None:
        if self._last_error is not None:
            logger.info("the prediction database takes writes again")
        self._last_error = None

    def _warn(self, message: str) -> None:
        # One line per interval: a database outage at 100 requests/s must not flood the log.
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            logger.warning("%s", message)
