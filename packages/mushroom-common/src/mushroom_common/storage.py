"""One storage interface over a local folder or a Google Cloud Storage bucket.

Chosen by `MUSHROOM_STORAGE_URI` (read by mushroom_common.settings): a plain path or `file://`
URI (default `./mushroom-data`), or `gs://bucket/prefix`. Writes are atomic on both backends: a
reader sees the old object, the new one, or nothing, never half of one.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from mushroom_common.settings import SharedSettings

logger = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"

T = TypeVar("T")


class StorageError(RuntimeError):
    """Base class of storage failures."""


class ObjectNotFoundError(StorageError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object not found"


class StorageUnavailableError(StorageError):
    """The storage cannot be reached or used: missing bucket, missing credentials, server down."""


class StorageFullError(StorageUnavailableError):
    """The disk under a local storage is full (or read-only): nothing more can be written."""


# Errors of the disk itself, not of the caller: retrying later (or elsewhere) may succeed.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


@contextlib.contextmanager
def _disk_errors(uri: str) -> Iterator[None]:
    """Turn a full or read-only disk into StorageFullError (a sentence, no traceback needed)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_ERRNOS:
            raise StorageFullError(
                f"cannot write to {uri}: {os.strerror(exc.errno or 0).lower()}"
            ) from exc
        raise


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"invalid storage key {key!r}: keys are relative, '/'-separated paths")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid storage key {key!r}: empty, '.' or '..' path segments")
    return key


class Storage(ABC):
    """Keys are relative '/'-separated paths under the storage root."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """The root URI (`file:///...` or `gs://bucket/prefix`)."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise ObjectNotFoundError when absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace the object atomically."""

    @abstractmethod
    def write_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Create the object atomically unless it exists; return whether it was written."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under the prefix (recursive), sorted."""

    def local_path(self, key: str) -> Path | None:
        """The object's path on local disk, when the backend is a local folder."""
        return None

    def uri_for(self, key: str) -> str:
        """Full URI of a key."""
        return f"{self.uri.rstrip('/')}/{_check_key(key)}"

    def read_text(self, key: str) -> str:
        """Read an object as UTF-8 text."""
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str, content_type: str = "text/plain") -> None:
        """Write UTF-8 text atomically."""
        self.write_bytes(key, text.encode("utf-8"), f"{content_type}; charset=utf-8")

    def read_json(self, key: str) -> Any:
        """Read and parse a JSON object."""
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        """Write a value as pretty, key-sorted JSON atomically."""
        text = json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"
        self.write_bytes(key, text.encode("utf-8"), "application/json")

    def download_file(self, key: str, local_path: Path) -> None:
        """Copy one object to a local file (atomically replaced)."""
        data = self.read_bytes(key)
        with _disk_errors(local_path.parent.as_uri()):
            _atomic_write_file(local_path, data)

    def upload_file(self, local_path: Path, key: str, content_type: str | None = None) -> None:
        """Copy one local file to an object."""
        self.write_bytes(key, local_path.read_bytes(), content_type)

    def download_tree(self, prefix: str, local_dir: Path) -> builtins.list[Path]:
        """Copy every object under prefix into local_dir, keeping relative paths."""
        base = prefix.rstrip("/") + "/" if prefix else ""
        written = []
        for key in self.list(base):
            target = local_dir / key[len(base) :]
            self.download_file(key, target)
            written.append(target)
        return written

    def upload_tree(self, local_dir: Path, prefix: str) -> builtins.list[str]:
        """Copy every file under local_dir to objects under prefix."""
        keys = []
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(local_dir).as_posix()}"
            self.upload_file(path, key)
            keys.append(key)
        return keys


def _write_temp(directory: Path, data: bytes) -> str:
    """Write data to a durable temporary file in directory (never listed); return its name."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return tmp_name


def _atomic_write_file(path: Path, data: bytes) -> None:
    tmp_name = _write_temp(path.parent, data)
    try:
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


class LocalStorage(Storage):
    """A folder on local disk. Atomic writes: temporary file, fsync, rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"{self.uri_for(key)} does not exist") from exc

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with _disk_errors(self.uri):
            _atomic_write_file(self._path(key), data)

    def write_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        with _disk_errors(self.uri):
            tmp_name = _write_temp(path.parent, data)
        try:
            # link() fails when the target exists, so two writers never both "win".
            os.link(tmp_name, path)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list(self, prefix: str = "") -> list[str]:
        if prefix:
            _check_key(prefix.rstrip("/") or "x")
        if not self.root.is_dir():
            return []
        # Walk only the deepest folder the prefix names, then filter by the full prefix.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / folder if folder else self.root
        if not start.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for filename in filenames:
                if filename.startswith(_TMP_PREFIX):
                    continue
                key = Path(dirpath, filename).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


def _retry_deadline() -> float:
    return SharedSettings().storage_retry_deadline_s


def _attempt_timeout() -> float:
    """Seconds one GCS request may take: a third of the retry deadline, between 1 and 20 s.

    The client's default (60 s per request, and 120 s of its own retries in `bucket.exists`)
    would overrun `MUSHROOM_STORAGE_RETRY_DEADLINE_S` many times over when GCS is unreachable.
    """
    return min(20.0, max(1.0, _retry_deadline() / 3))


class GCSStorage(Storage):
    """A `gs://bucket/prefix` through google-cloud-storage, with retries on transient errors."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._bucket: Any | None = None

    @property
    def uri(self) -> str:
        return (
            f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"
        )

    def _blob_name(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _get_bucket(self) -> Any:
        if self._bucket is not None:
            return self._bucket
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage as gcs

        try:
            client = self._client
            if client is None:
                shared = SharedSettings()
                if shared.storage_emulator_host:
                    from google.auth.credentials import AnonymousCredentials

                    client = gcs.Client(
                        project=shared.google_cloud_project or "emulator",
                        # google-auth leaves this constructor unannotated.
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    )
                else:
                    client = gcs.Client()
            bucket = client.bucket(self.bucket_name)
            # retry=None: the client's own retry (120 s) would ignore our deadline.
            exists = self._call(lambda: bucket.exists(retry=None, timeout=_attempt_timeout()))
        except DefaultCredentialsError as exc:
            raise StorageUnavailableError(
                f"cannot use {self.uri}: no Google Cloud credentials found. Run "
                "`gcloud auth application-default login`, use Workload Identity, or set "
                "GOOGLE_APPLICATION_CREDENTIALS (or STORAGE_EMULATOR_HOST for an emulator)."
            ) from exc
        if not exists:
            raise StorageUnavailableError(
                f"cannot use {self.uri}: bucket {self.bucket_name!r} does not exist or this "
                "account may not see it. Create it (see deployment/README.md) or fix "
                "MUSHROOM_STORAGE_URI."
            )
        self._bucket = bucket
        return bucket

    def _call(self, operation: Callable[[], T]) -> T:
        """Run one GCS call, retrying transient errors with exponential backoff."""
        from google.api_core import exceptions as gexc
        from requests import exceptions as rexc

        transient = (
            gexc.TooManyRequests,
            gexc.InternalServerError,
            gexc.BadGateway,
            gexc.ServiceUnavailable,
            gexc.GatewayTimeout,
            rexc.ConnectionError,
            rexc.Timeout,
            ConnectionError,
        )
        budget = _retry_deadline()
        deadline = time.monotonic() + budget
        delay = 0.1
        attempt = 1
        while True:
            try:
                return operation()
            except gexc.Forbidden as exc:
                raise StorageUnavailableError(
                    f"access to {self.uri} was refused: {exc.message}"
                ) from exc
            except (*transient, gexc.RetryError) as exc:
                left = deadline - time.monotonic()
                if left < delay:
                    logger.error(
                        "GCS %s: attempt %d failed (%s); giving up after %.0f s",
                        self.uri,
                        attempt,
                        type(exc).__name__,
                        budget,
                    )
                    raise StorageUnavailableError(
                        f"{self.uri} is unreachable or keeps failing ({type(exc).__name__}); "
                        f"gave up after {budget:.0f} s of retries"
                    ) from exc
                logger.warning(
                    "GCS %s: attempt %d failed (%s); retrying in %.1f s (%.0f s left)",
                    self.uri,
                    attempt,
                    type(exc).__name__,
                    delay,
                    left,
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                attempt += 1

    def read_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        blob = self._get_bucket().blob(self._blob_name(key))
        try:
            data: bytes = self._call(
                lambda: blob.download_as_bytes(retry=None, timeout=_attempt_timeout())
            )
        except NotFound as exc:
            raise ObjectNotFoundError(f"{self.uri_for(key)} does not exist") from exc
        return data

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        # A single-request upload only becomes visible once complete: atomic for readers.
        blob = self._get_bucket().blob(self._blob_name(key))
        self._call(
            lambda: blob.upload_from_string(
                data,
                content_type=content_type or "application/octet-stream",
                retry=None,
                timeout=_attempt_timeout(),
            )
        )

    def write_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._get_bucket().blob(self._blob_name(key))
        if self._call(lambda: blob.exists(retry=None, timeout=_attempt_timeout())):
            return False
        try:
            self._call(
                lambda: blob.upload_from_string(
                    data,
                    content_type=content_type or "application/octet-stream",
                    if_generation_match=0,
                    retry=None,
                    timeout=_attempt_timeout(),
                )
            )
        except PreconditionFailed:
            return False
        return True

    def exists(self, key: str) -> bool:
        blob = self._get_bucket().blob(self._blob_name(key))
        return bool(self._call(lambda: blob.exists(retry=None, timeout=_attempt_timeout())))

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        blob = self._get_bucket().blob(self._blob_name(key))
        with contextlib.suppress(NotFound):
            self._call(lambda: blob.delete(retry=None, timeout=_attempt_timeout()))

    def list(self, prefix: str = "") -> list[str]:
        bucket = self._get_bucket()
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0

        def collect() -> builtins.list[str]:
            names: Iterator[Any] = bucket.client.list_blobs(
                bucket, prefix=full_prefix, retry=None, timeout=_attempt_timeout()
            )
            return [blob.name[strip:] for blob in names]

        return sorted(self._call(collect))


def open_storage(uri: str | None = None) -> Storage:
    """Open the storage at uri, or at `MUSHROOM_STORAGE_URI`, or at `./mushroom-data`."""
    chosen = SharedSettings().storage_uri_or(uri)
    parsed = urlparse(chosen)
    if parsed.scheme == "gs":
        if not parsed.netloc:
            raise ValueError(f"{chosen!r} names no bucket: use gs://bucket/prefix")
        return GCSStorage(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStorage(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(
            f"unsupported storage URI {chosen!r}: use a local path, file:///path or gs://bucket/prefix"
        )
    return LocalStorage(Path(chosen))
