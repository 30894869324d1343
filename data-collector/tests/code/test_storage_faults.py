"""Issue 15 item 13: a long storage outage or a full disk ends a run with one sentence.

Before, the collector printed a 140-line traceback; the data stayed consistent (atomic writes),
and still does: the run can be repeated once storage is back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mushroom_collector.cli import STORAGE_FAILED_EXIT


def _tree(root: Path, make_jpeg: Callable[[int], bytes], count: int = 6) -> Path:
    tree = root / "tree"
    for number in range(count):
        path = tree / "boletus_edulis" / f"{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(number))
    return tree


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _collect(
    args: list[str], env: dict[str, str], wrapper: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mushroom_collector.cli", *args]
    return subprocess.run(
        [*(wrapper or []), *command], env=env, capture_output=True, text=True, timeout=120
    )


def _assert_one_sentence(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == STORAGE_FAILED_EXIT, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "stopped:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "run the same command again" in result.stderr


def test_a_long_outage_ends_with_one_sentence(
    tmp_path: Path, make_jpeg: Callable[[int], bytes]
) -> None:
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{_closed_port()}",
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "MUSHROOM_STORAGE_RETRY_DEADLINE_S": "1",
        "COLUMNS": "200",
    }
    tree = _tree(tmp_path, make_jpeg)
    result = _collect(["import-folder", str(tree), "-q", "--storage", "gs://down/data"], env)
    _assert_one_sentence(result)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a tmpfs")
def test_a_full_disk_ends_with_one_sentence_and_keeps_nothing_half_written(
    tmp_path: Path, make_jpeg: Callable[[int], bytes]
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    tree = _tree(tmp_path, make_jpeg, count=40)
    # A 256 KB tmpfs in a private mount namespace, so the photos fill it part way through.
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs -o size=256k tmpfs "{disk}" && "$@"; status=$?; '
        f'find "{disk}" -name ".tmp-*" | wc -l; exit $status',
        "sh",
    ]
    env = {**os.environ, "COLUMNS": "200"}
    result = _collect(["import-folder", str(tree), "-q", "--storage", str(disk)], env, wrapper)
    if "permission denied" in result.stderr.lower() and "mount" in result.stderr.lower():
        pytest.skip("mounting a tmpfs needs CAP_SYS_ADMIN")
    _assert_one_sentence(result)
    assert "no space left" in result.stderr.lower()
    assert result.stdout.strip().splitlines()[-1] == "0"  # no temporary file left behind
