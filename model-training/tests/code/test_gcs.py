"""Training reads a dataset version from GCS and the registry lives there too (real emulator)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import open_storage
from mushroom_training.config import Settings, TrainConfig
from mushroom_training.export import export
from mushroom_training.promotion import promote
from mushroom_training.train import train


def test_train_export_promote_on_gcs(
    gcs_emulator: tuple[Any, str],
    tmp_path: Path,
    weights_cache: Path,
    dataset_writer: Callable[..., str],
    quick_tiny_config: Callable[..., TrainConfig],
) -> None:
    _, uri = gcs_emulator
    storage = open_storage(uri)
    dataset_writer(storage, "ds-gcs", per_split=(6, 3, 3))
    settings = Settings(runs_dir=tmp_path / "runs", weights_cache_dir=weights_cache)
    config = quick_tiny_config()
    run = train(config, storage=storage, settings=settings)
    bundle = export(run.run_dir, storage=storage, settings=settings, version="v-gcs")
    assert bundle.uri.startswith("gs://")
    registry = ModelRegistry(storage)
    assert registry.versions("mushroom-classifier") == ["v-gcs"]
    assert (tmp_path / "runs" / "tracking" / "mlflow.db").is_file()  # gs:// storage: local store
    promote(storage, "mushroom-classifier", "v-gcs")
    current = registry.champion("mushroom-classifier")
    assert current is not None
    assert current.version == "v-gcs"
