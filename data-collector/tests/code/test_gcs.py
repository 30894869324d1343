"""`gs://` storage works the same way: a real GCS emulator over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mushroom_collector.cli import app
from mushroom_common.dataset import list_dataset_versions, read_manifest
from mushroom_common.storage import open_storage

MakeJpeg = Callable[..., bytes]


def test_import_and_build_on_gcs_match_local(
    gcs_emulator: tuple[Any, str], tmp_path: Path, make_jpeg: MakeJpeg
) -> None:
    _emulator, uri = gcs_emulator
    tree = tmp_path / "tree"
    for i in range(10):
        path = tree / ("boletus_edulis" if i % 2 else "amanita_muscaria") / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(i))
    runner = CliRunner()
    ids = []
    for storage_uri in (uri, str(tmp_path / "local")):
        imported = runner.invoke(app, ["import-folder", str(tree), "-q", "--storage", storage_uri])
        assert imported.exit_code == 0, imported.output
        built = runner.invoke(app, ["build", "-q", "--storage", storage_uri])
        assert built.exit_code == 0, built.output
        ids.append(built.output.strip().splitlines()[-1])
    assert ids[0] == ids[1]
    gcs = open_storage(uri)
    assert list_dataset_versions(gcs) == [ids[0]]
    assert len(read_manifest(gcs, ids[0])) == 10
