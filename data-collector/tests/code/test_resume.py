"""kill -9 of a real `mushroom-collect` process at a random moment, then a clean resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mushroom_collector.folder import import_folder
from mushroom_collector.images import sha256_hex
from mushroom_collector.records import load_records
from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import PHOTOS_PREFIX, list_dataset_versions, read_manifest
from mushroom_common.storage import LocalStorage

if TYPE_CHECKING:
    from conftest import FakeInat

MakeJpeg = Callable[..., bytes]
CLI = Path(sys.executable).with_name("mushroom-collect")


def _env(storage: LocalStorage, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    return env | {"MUSHROOM_STORAGE_URI": str(storage.root)} | extra


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the collector finished before it could be killed"
        assert time.monotonic() < deadline, "the collector made no progress"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


def _class_tree(root: Path, make_jpeg: MakeJpeg, count: int, **jpeg: Any) -> Path:
    """`count` photos under `root`, alternating between two class folders."""
    for i in range(count):
        path = root / ("boletus_edulis" if i % 2 else "imleria_badia") / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(i, **jpeg))
    return root


def _assert_consistent(storage: LocalStorage, expected_records: int) -> None:
    """Every record points at a whole photo; every photo has a record; nothing twice."""
    records = load_records(storage)
    assert len(records) == expected_records
    assert len({r.record_id for r in records}) == expected_records
    for record in records:
        assert sha256_hex(storage.read_bytes(record.image_key)) == record.content_hash
    assert set(storage.list(f"{PHOTOS_PREFIX}/")) == {r.image_key for r in records}


def test_inat_killed_mid_run_resumes_cleanly(
    fake_inat: FakeInat, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    for obs in range(1, 31):
        fake_inat.add_observation(obs, 48701, [(obs * 10, "cc-by", make_jpeg(obs))])
    fake_inat.photo_delay_s = 0.05
    command = [str(CLI), "inat", "--species", "boletus_edulis", "--quiet"]
    env = _env(
        storage,
        COLLECTOR_INAT_BASE_URL=fake_inat.base_url,
        COLLECTOR_RATE_WINDOW_S="0.01",
        COLLECTOR_BACKOFF_BASE_S="0.01",
    )

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _kill_when(first, lambda: len(load_records(storage)) >= 8, timeout=60)
    survived = len(load_records(storage))
    assert survived < 30
    downloads_before = len(fake_inat.requests_to("/photos/"))

    second = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr.decode()
    assert "30 photos" in second.stdout.decode()
    _assert_consistent(storage, 30)
    # Resumed, not restarted: only photos without a record were fetched again.
    assert len(fake_inat.requests_to("/photos/")) - downloads_before == 30 - survived


def test_import_folder_killed_mid_run_resumes_cleanly(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = _class_tree(tmp_path / "tree", make_jpeg, 300, size=(256, 192))
    command = [str(CLI), "import-folder", str(root), "--quiet"]

    first = subprocess.Popen(
        command, env=_env(storage), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _kill_when(first, lambda: len(storage.list("collected/folder/")) >= 20, timeout=60)
    assert len(storage.list("collected/folder/")) < 300

    second = subprocess.run(
        command, env=_env(storage), capture_output=True, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr.decode()
    _assert_consistent(storage, 300)


def test_build_killed_while_writing_leaves_no_version_and_rerun_completes(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = _class_tree(tmp_path / "tree", make_jpeg, 100)
    import_folder(storage, root, load_catalog(), quiet=True)
    env = _env(storage)
    command = [str(CLI), "build", "--quiet"]

    datasets = storage.root / "datasets"
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Busy-wait for the version folder (created just before its first file) and kill at once.
    deadline = time.monotonic() + 60
    while not datasets.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # Whatever the kill interrupted, a listed version is always whole.
    for version_id in list_dataset_versions(storage):
        assert len(read_manifest(storage, version_id)) == 100

    second = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr.decode()
    version_id = second.stdout.decode().strip().splitlines()[-1]
    assert list_dataset_versions(storage) == [version_id]
    assert len(read_manifest(storage, version_id)) == 100
