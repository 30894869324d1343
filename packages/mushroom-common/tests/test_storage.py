"""The same storage suite against the local folder and a real GCS emulator over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mushroom_common.storage import (
    GCSStorage,
    LocalStorage,
    ObjectNotFoundError,
    Storage,
    StorageUnavailableError,
    open_storage,
)


@pytest.fixture(params=["local", "gcs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield open_storage(str(tmp_path / "store"))
    else:
        _emulator, uri = request.getfixturevalue("gcs_emulator")
        yield open_storage(uri)


def test_round_trip_bytes_text_json(storage: Storage) -> None:
    storage.write_bytes("a/b/c.bin", b"\x00\x01")
    storage.write_text("a/readme.txt", "héllo")
    storage.write_json("a/data.json", {"z": 1, "a": [1, 2]})
    assert storage.read_bytes("a/b/c.bin") == b"\x00\x01"
    assert storage.read_text("a/readme.txt") == "héllo"
    assert storage.read_json("a/data.json") == {"a": [1, 2], "z": 1}
    assert storage.exists("a/b/c.bin")
    assert not storage.exists("a/b/missing.bin")


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.write_bytes("k", b"old")
    storage.write_bytes("k", b"new")
    assert storage.read_bytes("k") == b"new"


def test_missing_object_raises_not_found(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError, match="does not exist"):
        storage.read_bytes("nope/never.txt")


def test_write_if_absent_writes_once(storage: Storage) -> None:
    assert storage.write_bytes_if_absent("photos/x.jpg", b"first") is True
    assert storage.write_bytes_if_absent("photos/x.jpg", b"second") is False
    assert storage.read_bytes("photos/x.jpg") == b"first"


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.write_bytes("gone.txt", b"x")
    storage.delete("gone.txt")
    storage.delete("gone.txt")
    assert not storage.exists("gone.txt")


def test_listing_by_prefix_is_complete_after_many_writes(storage: Storage) -> None:
    keys = [f"photos/{i % 7:02d}/{i:05d}.jpg" for i in range(240)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: storage.write_bytes(key, key.encode()), keys))
    storage.write_bytes("photosynthesis.txt", b"not under photos/")
    assert storage.list("photos/") == sorted(keys)
    assert storage.list("photos/03/") == sorted(k for k in keys if k.startswith("photos/03/"))
    assert "photosynthesis.txt" in storage.list("photo")
    assert storage.list("nothing-here/") == []


def test_tree_upload_and_download(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "bundle"
    (source / "saved_model" / "variables").mkdir(parents=True)
    (source / "metadata.json").write_text("{}")
    (source / "saved_model" / "variables" / "v.data").write_bytes(b"\x07" * 1000)
    keys = storage.upload_tree(source, "models/m/1")
    assert keys == ["models/m/1/metadata.json", "models/m/1/saved_model/variables/v.data"]
    target = tmp_path / "copy"
    storage.download_tree("models/m/1", target)
    assert (target / "saved_model" / "variables" / "v.data").read_bytes() == b"\x07" * 1000


@pytest.mark.parametrize("bad_key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_invalid_keys_are_refused(storage: Storage, bad_key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.write_bytes(bad_key, b"x")


def test_uri_for_names_the_backend(storage: Storage) -> None:
    assert storage.uri_for("a/b.txt").startswith(("file://", "gs://"))
    assert storage.uri_for("a/b.txt").endswith("/a/b.txt")


def test_open_storage_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(tmp_path.as_uri()), LocalStorage)
    gcs = open_storage("gs://bucket/some/prefix/")
    assert isinstance(gcs, GCSStorage)
    assert gcs.uri == "gs://bucket/some/prefix"
    monkeypatch.setenv("MUSHROOM_STORAGE_URI", str(tmp_path / "env"))
    local = open_storage()
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "env").resolve()
    monkeypatch.delenv("MUSHROOM_STORAGE_URI")
    default = open_storage()
    assert isinstance(default, LocalStorage)
    assert default.root == (Path.cwd() / "mushroom-data").resolve()
    with pytest.raises(ValueError, match="unsupported storage URI"):
        open_storage("s3://bucket/x")
    with pytest.raises(ValueError, match="names no bucket"):
        open_storage("gs:///x")


def test_interrupted_local_write_leaves_no_visible_object(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-write leaves neither the object nor a listed temp file."""
    root = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import os, sys
        import mushroom_common.storage as s

        real_fsync = os.fsync
        def die(fd):
            sys.stdout.write("writing\\n"); sys.stdout.flush()
            os.kill(os.getpid(), 9)
        os.fsync = die
        s.open_storage({str(root)!r}).write_bytes("big/object.bin", b"x" * 5_000_000)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9
    assert b"writing" in result.stdout
    storage = open_storage(str(root))
    assert not storage.exists("big/object.bin")
    assert storage.list() == []


def test_interrupted_local_overwrite_keeps_old_object(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    storage.write_bytes("k", b"old")

    class BoomError(Exception):
        pass

    def exploding_fsync(_fd: int) -> None:
        raise BoomError

    original = os.fsync
    os.fsync = exploding_fsync
    try:
        with pytest.raises(BoomError):
            storage.write_bytes("k", b"new" * 1000)
    finally:
        os.fsync = original
    assert storage.read_bytes("k") == b"old"
    assert storage.list() == ["k"]


def test_interrupted_gcs_upload_leaves_no_visible_object(gcs_emulator: tuple[Any, str]) -> None:
    """An upload that never completes (the connection drops) creates no object."""
    _emulator, uri = gcs_emulator
    storage = open_storage(uri)
    assert isinstance(storage, GCSStorage)
    blob = storage._get_bucket().blob(storage._blob_name("half.bin"))

    def broken_stream() -> Iterator[bytes]:
        yield b"x" * 1024
        raise ConnectionResetError("client died mid-upload")

    class BrokenFile:
        def __init__(self) -> None:
            self._chunks = broken_stream()

        def read(self, _size: int = -1) -> bytes:
            return next(self._chunks)

        def tell(self) -> int:
            return 0

    with pytest.raises(Exception, match="mid-upload"):
        blob.upload_from_file(BrokenFile(), size=10_000_000, retry=None)
    assert not storage.exists("half.bin")
    assert storage.list() == []


def test_missing_bucket_gives_one_clear_error(gcs_emulator: tuple[Any, str]) -> None:
    storage = open_storage("gs://no-such-bucket-here/prefix")
    with pytest.raises(
        StorageUnavailableError, match="bucket 'no-such-bucket-here' does not exist"
    ):
        storage.read_bytes("x")


def test_stopped_emulator_gives_clear_error_not_hang(gcs_emulator: tuple[Any, str]) -> None:
    emulator, uri = gcs_emulator
    storage = open_storage(uri)
    storage.write_bytes("alive.txt", b"yes")
    emulator.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="unreachable or keeps failing"):
        storage.read_bytes("alive.txt")
    assert time.monotonic() - started < 30


def test_missing_credentials_give_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    # No ADC file, no metadata server reachable (GCE_METADATA_HOST points at a closed port).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    storage = open_storage("gs://some-bucket/prefix")
    with pytest.raises(StorageUnavailableError, match="no Google Cloud credentials found"):
        storage.exists("x")
