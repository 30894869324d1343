"""Storage on the request path: its own bounded threads and a deadline shorter than a probe.

During a storage outage every call retries for `MUSHROOM_STORAGE_RETRY_DEADLINE_S` (30 s in the
cluster). Run on the server's shared worker threads, some forty such calls would occupy them all
and starve /healthz, /readyz and /predict. Here storage calls run on a few threads of their own;
a request waits at most `timeout_s` for its call, and when every thread and queue slot is taken
the request is refused at once. Either way the route answers 503 with Retry-After.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import TypeVar

from mushroom_common.storage import Storage, StorageUnavailableError

T = TypeVar("T")


class StorageBusyError(StorageUnavailableError):
    """Every storage thread and queue slot is taken: storage is slow or down."""


class StorageTimeoutError(StorageUnavailableError):
    """A storage call did not finish within the request's deadline."""


class BoundedStorage(Storage):
    """A storage whose every call runs on a bounded pool and is waited for at most `timeout_s`.

    A call that passes its deadline keeps running on its thread until the storage answers or
    its own retries give up (a write may still land; every write the API makes is idempotent),
    and it keeps its slot until then, so the threads in use never exceed `workers`.
    """

    def __init__(self, inner: Storage, workers: int, timeout_s: float, queued: int = 0) -> None:
        self.inner = inner
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storage")
        self._slots = threading.BoundedSemaphore(workers + (queued or workers))

    @property
    def uri(self) -> str:
        return self.inner.uri

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def _run(self, call: Callable[[], T]) -> T:
        if not self._slots.acquire(blocking=False):
            raise StorageBusyError("every storage thread is busy with earlier calls")
        try:
            future: Future[T] = self._executor.submit(call)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _done: self._slots.release())
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeoutError as exc:
            raise StorageTimeoutError(
                f"storage did not answer within {self.timeout_s:g} s"
            ) from exc

    def read_bytes(self, key: str) -> bytes:
        return self._run(lambda: self.inner.read_bytes(key))

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._run(lambda: self.inner.write_bytes(key, data, content_type))

    def write_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        return self._run(lambda: self.inner.write_bytes_if_absent(key, data, content_type))

    def exists(self, key: str) -> bool:
        return self._run(lambda: self.inner.exists(key))

    def delete(self, key: str) -> None:
        self._run(lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> builtins.list[str]:
        return self._run(lambda: self.inner.list(prefix))

    def close(self) -> None:
        """Stop taking calls; running ones finish on their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
