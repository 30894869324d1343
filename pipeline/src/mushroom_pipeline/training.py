"""The model steps, through model-training's Python API (TensorFlow is imported only here)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mushroom_common.bundle import METADATA_FILE, BundleMetadata, bundle_prefix
from mushroom_common.storage import Storage
from mushroom_training.config import Settings as TrainSettings
from mushroom_training.config import TrainConfig, get_settings, load_config

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


def epoch_overrides(config: TrainConfig, epochs: int) -> list[str]:
    """Overrides that cap every training phase at `epochs` (phase 2 stays off when it is off)."""
    overrides = [f"training.phase1_epochs={epochs}", f"student.epochs={epochs}"]
    if config.training.phase2_epochs > 0:
        overrides.append(f"training.phase2_epochs={epochs}")
    return overrides


@dataclass
class TrainingSteps:
    """train, export, evaluate and promote for one pipeline run."""

    storage: Storage
    runs_dir: Path
    config_path: Path | None
    overrides: list[str] = field(default_factory=list)
    epochs: int | None = None
    model_name: str | None = None
    command: str = "mushroom-pipeline run"

    @property
    def settings(self) -> TrainSettings:
        """model-training's settings with the pipeline's runs folder."""
        return get_settings().model_copy(update={"runs_dir": self.runs_dir})

    def resolved_config(self, dataset_version: str) -> dict[str, Any]:
        """The full training config (file + overrides + epochs + name + dataset version)."""
        base = load_config(self.config_path, self.overrides)
        extra = epoch_overrides(base, self.epochs) if self.epochs is not None else []
        if self.model_name:
            extra.append(f"export.name={self.model_name}")
        extra.append(f"data.dataset_version={dataset_version}")
        config = load_config(self.config_path, [*self.overrides, *extra])
        if self.config_path is not None:
            logger.info("training config %s", self.config_path)
        return config.model_dump(mode="json")

    def train(self, config: dict[str, Any]) -> dict[str, Any]:
        """Train on the pinned dataset version; the run folder goes under runs_dir."""
        from mushroom_training.train import train

        result = train(
            TrainConfig.model_validate(config),
            storage=self.storage,
            settings=self.settings,
            command=self.command,
        )
        return {
            "run_id": result.run_id,
            "run_dir": str(result.run_dir.resolve()),
            "metrics": result.metrics,
        }

    def run_still_there(self, outputs: dict[str, Any]) -> bool:
        """The recorded training run's folder still holds its run.json."""
        return (Path(str(outputs.get("run_dir", ""))) / RUN_FILE).is_file()

    def export(self, train_outputs: dict[str, Any]) -> dict[str, Any]:
        """Export the run as a bundle under models/<name>/<version>/."""
        from mushroom_training.export import export

        result = export(
            Path(str(train_outputs["run_dir"])),
            storage=self.storage,
            settings=self.settings,
            command=self.command,
        )
        return {
            "name": result.name,
            "version": result.version,
            "uri": result.uri,
            "serving_variant": result.metadata.serving_variant,
            "metrics": result.metadata.metrics,
        }

    def bundle_still_there(self, outputs: dict[str, Any]) -> bool:
        """The recorded bundle's metadata is still in the registry."""
        prefix = bundle_prefix(str(outputs.get("name")), str(outputs.get("version")))
        return self.storage.exists(f"{prefix}/{METADATA_FILE}")

    def _download(self, name: str, version: str, into: Path) -> tuple[Path, BundleMetadata]:
        target = into / version
        prefix = bundle_prefix(name, version)
        metadata = BundleMetadata.model_validate_json(
            self.storage.read_bytes(f"{prefix}/{METADATA_FILE}")
        )
        wanted = {METADATA_FILE, metadata.variant().path}
        for key in self.storage.list(f"{prefix}/"):
            if key[len(prefix) + 1 :] in wanted:
                self.storage.download_file(key, target / key[len(prefix) + 1 :])
        return target, metadata

    def evaluate(self, name: str, version: str, champion: str | None) -> dict[str, Any]:
        """The candidate's and the champion's served variants on the candidate's test split."""
        from mushroom_training.evaluate import evaluate_bundle

        tmp = Path(tempfile.mkdtemp(prefix="mushroom-evaluate-"))
        try:
            bundle_dir, metadata = self._download(name, version, tmp)
            serving = metadata.serving_variant
            metrics = evaluate_bundle(bundle_dir, self.storage, split="test", variants=[serving])
            outputs: dict[str, Any] = {
                "name": name,
                "version": version,
                "dataset_version": metadata.dataset_version,
                "metrics": metrics[serving],
                "champion": champion,
                "champion_metrics": {},
            }
            if champion is not None and champion != version:
                champion_dir, champion_meta = self._download(name, champion, tmp)
                champion_metrics = evaluate_bundle(
                    champion_dir,
                    self.storage,
                    dataset_version=metadata.dataset_version,
                    split="test",
                    variants=[champion_meta.serving_variant],
                )
                outputs["champion_metrics"] = champion_metrics[champion_meta.serving_variant]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return outputs

    def promote(self, name: str, version: str, force: bool) -> dict[str, Any]:
        """Promote through model-training's safety gate."""
        raise NotImplementedError
