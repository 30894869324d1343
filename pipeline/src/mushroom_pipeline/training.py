"""The model steps, through model-training's Python API (TensorFlow is imported only here)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mushroom_common.registry import InvalidIdentifierError, ModelRegistry
from mushroom_common.storage import Storage
from mushroom_training.config import Settings as TrainSettings
from mushroom_training.config import TrainConfig, get_settings, load_config

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


def phase_epochs(config: TrainConfig) -> dict[str, int]:
    """The epochs of every training phase, by override key (0: the phase is off)."""
    return {
        "training.phase1_epochs": config.training.phase1_epochs,
        "training.phase2_epochs": config.training.phase2_epochs,
        "student.epochs": config.student.epochs,
    }


def epoch_overrides(config: TrainConfig, epochs: int) -> list[str]:
    """Overrides that cap every training phase at `epochs` (a phase that is off stays off)."""
    return [f"{key}={epochs}" for key, current in phase_epochs(config).items() if current > 0]


@dataclass
class TrainingSteps:
    """train, export, evaluate, field-tune and promote for one pipeline run."""

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
        try:
            return ModelRegistry(self.storage).has_version(
                str(outputs.get("name")), str(outputs.get("version"))
            )
        except InvalidIdentifierError:
            return False

    def evaluate(self, name: str, version: str) -> dict[str, Any]:
        """Every TFLite variant of the stored bundle on its dataset version's test split."""
        from mushroom_training.evaluate import evaluate_bundle

        with tempfile.TemporaryDirectory(prefix="mushroom-evaluate-") as tmp:
            metadata = ModelRegistry(self.storage).download(name, version, Path(tmp))
            metrics = evaluate_bundle(Path(tmp), self.storage, split="test")
        return {
            "name": name,
            "version": version,
            "dataset_version": metadata.dataset_version,
            "serving_variant": metadata.serving_variant,
            "metrics": metrics.get(metadata.serving_variant, {}),
            "variants": metrics,
        }

    def field_tune(self, name: str, version: str, data_root: Path) -> dict[str, Any]:
        """The stored bundle with its verdict thresholds tuned on field validation photos,
        published beside it in the registry (`export_field_bundle`).

        The model is the bundle's own (its head, temperature and open-set threshold kept): only
        the decision thresholds change, and its in-source and field numbers are recorded.
        """
        from mushroom_common.catalog import load_catalog
        from mushroom_common.dataset import read_manifest
        from mushroom_training.field_bundle import export_field_bundle

        registry = ModelRegistry(self.storage)
        with tempfile.TemporaryDirectory(prefix="mushroom-field-") as tmp:
            source = registry.download(name, version, Path(tmp) / "source")
            target = Path(tmp) / "field"
            tuned = export_field_bundle(
                Path(tmp) / "source",
                target,
                None,
                self.storage,
                read_manifest(self.storage, source.dataset_version),
                data_root,
                load_catalog(),
                self.command,
                keep_calibration=True,
            )
            registry.publish(target)
        return {
            "name": tuned.name,
            "version": tuned.version,
            "metrics": {k: v for k, v in tuned.metrics.items() if k.startswith("field_")},
        }

    def promote(self, name: str, version: str, force: bool) -> dict[str, Any]:
        """Promote through model-training's safety gate; a refusal is an outcome, not an error."""
        from mushroom_training.promotion import (
            PromotionRefusedError,
            model_tests,
            promote,
            run_model_tests,
        )

        # The candidate passes the model tests before it becomes the champion (source checkouts;
        # an installed image has no tests and the metrics rule decides alone).
        checks = run_model_tests if model_tests() is not None else None
        try:
            event = promote(
                self.storage,
                name,
                version,
                force=force,
                reason="mushroom-pipeline run",
                checks=checks,
            )
        except PromotionRefusedError as exc:
            event = exc.event
            logger.warning("promotion of %s/%s refused: %s", name, version, event.reason)
        current = ModelRegistry(self.storage).champion(name)
        return {
            "accepted": event.accepted,
            "forced": event.forced,
            "reason": event.reason,
            "candidate": f"{name}/{version}",
            "previous_champion": event.previous_version,
            "champion": current.version if current else None,
            "metrics": event.metrics,
            "previous_metrics": event.previous_metrics,
        }
